#include "user_agent.hpp"

#include <array>
#include <utility>

namespace sessrev::user_agent {
namespace {

using Rule = std::pair<std::string_view, std::string_view>;  // marker, name

// Order matters: Edge and Opera also say "Chrome", Chrome also says "Safari",
// and iOS also says "Mac OS X".
constexpr std::array<Rule, 11> browsers{{
    {"Edg/", "Edge"},
    {"EdgiOS/", "Edge"},
    {"EdgA/", "Edge"},
    {"OPR/", "Opera"},
    {"SamsungBrowser/", "Samsung Internet"},
    {"CriOS/", "Chrome"},
    {"Chrome/", "Chrome"},
    {"FxiOS/", "Firefox"},
    {"Firefox/", "Firefox"},
    {"Safari/", "Safari"},
    {"curl/", "curl"},
}};

constexpr std::array<Rule, 9> systems{{
    {"iPhone", "iOS"},
    {"iPad", "iPadOS"},
    {"iPod", "iOS"},
    {"Android", "Android"},
    {"CrOS", "ChromeOS"},
    {"Windows", "Windows"},
    {"Macintosh", "macOS"},
    {"Mac OS X", "macOS"},
    {"Linux", "Linux"},
}};

template <std::size_t N>
std::string_view first_match(std::string_view text, const std::array<Rule, N> &rules) {
    for (const auto &[marker, name] : rules)
        if (text.find(marker) != std::string_view::npos) return name;
    return {};
}

}  // namespace

std::string device_name(std::string_view user_agent) {
    const std::string_view browser = first_match(user_agent, browsers);
    const std::string_view system = first_match(user_agent, systems);
    if (browser.empty() && system.empty()) return std::string(unknown_device);
    if (system.empty()) return std::string(browser);
    if (browser.empty()) return std::string(system) + " device";
    return std::string(browser) + " on " + std::string(system);
}

}  // namespace sessrev::user_agent
