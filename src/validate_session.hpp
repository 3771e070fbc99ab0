// validate_session and the warming of its cache by create_session and
// rotate_token (their new token is cached when their transaction commits).
#pragma once

namespace sessrev::validation {

void register_callbacks();

}  // namespace sessrev::validation
