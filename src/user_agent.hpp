// A readable device name ("Chrome on macOS") from a User-Agent header: pure C++.
#pragma once

#include <string>
#include <string_view>

namespace sessrev::user_agent {

inline constexpr std::string_view unknown_device = "Unknown device";

std::string device_name(std::string_view user_agent);

}  // namespace sessrev::user_agent
