// Fuzzes the config loader: any bytes as the text of a config file.
//
// parse_config() must never crash or throw, and must either hand out a
// config with no problems or report at least one problem and no config.
#include "config.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto result = iam_tokend::parse_config(text, "/etc/iam-tokend");

    if (result.config.has_value() == !result.problems.empty()) {
        std::abort();
    }
    if (result.config && result.config->profiles.empty()) {
        std::abort();
    }
    for (const auto& problem : result.problems) {
        if (problem.empty()) {
            std::abort();
        }
    }
    return 0;
}
