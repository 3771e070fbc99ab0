// libFuzzer target: sessrev::user_agent::device_name on any bytes. Beyond not
// reading outside the input (which is not NUL-terminated), the name must be
// one device_name can give, and name a browser and a system whose markers are
// in the input.
#include "user_agent.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Name {
    std::string_view name;
    std::vector<std::string_view> markers;  // any one of them gives the name
};

const std::vector<Name> browsers{
    {"Edge", {"Edg/", "EdgiOS/", "EdgA/"}},
    {"Opera", {"OPR/"}},
    {"Samsung Internet", {"SamsungBrowser/"}},
    {"Chrome", {"CriOS/", "Chrome/"}},
    {"Firefox", {"FxiOS/", "Firefox/"}},
    {"Safari", {"Safari/"}},
    {"curl", {"curl/"}},
};
const std::vector<Name> systems{
    {"iOS", {"iPhone", "iPod"}},
    {"iPadOS", {"iPad"}},
    {"Android", {"Android"}},
    {"ChromeOS", {"CrOS"}},
    {"Windows", {"Windows"}},
    {"macOS", {"Macintosh", "Mac OS X"}},
    {"Linux", {"Linux"}},
};

bool contains(std::string_view text, std::string_view part) {
    return text.find(part) != std::string_view::npos;
}

// Whether `name` is one of `names` with a marker in `input`.
bool named_by_input(std::string_view name, const std::vector<Name> &names, std::string_view input) {
    for (const auto &n : names)
        if (n.name == name) {
            for (auto m : n.markers)
                if (contains(input, m)) return true;
            return false;
        }
    return false;
}

bool any_marker(const std::vector<Name> &names, std::string_view input) {
    for (const auto &n : names)
        for (auto m : n.markers)
            if (contains(input, m)) return true;
    return false;
}

void require(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    // A heap copy of exactly `size` bytes: ASan sees any read past its end.
    std::vector<char> bytes(data, data + size);
    const std::string_view input(bytes.data(), bytes.size());
    const std::string name = sessrev::user_agent::device_name(input);

    const bool browser = any_marker(browsers, input);
    const bool system = any_marker(systems, input);
    const std::string_view n = name;
    if (!browser && !system) {
        require(n == sessrev::user_agent::unknown_device);
    } else if (!system) {
        require(named_by_input(n, browsers, input));
    } else if (!browser) {
        constexpr std::string_view suffix = " device";
        require(n.size() > suffix.size() && n.substr(n.size() - suffix.size()) == suffix);
        require(named_by_input(n.substr(0, n.size() - suffix.size()), systems, input));
    } else {
        const auto on = n.find(" on ");
        require(on != std::string_view::npos);
        require(named_by_input(n.substr(0, on), browsers, input));
        require(named_by_input(n.substr(on + 4), systems, input));
    }
    return 0;
}
