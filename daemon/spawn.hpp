// The one place where exceptions that escape a spawned coroutine end up.
#pragma once

#include <spdlog/spdlog.h>

#include <exception>
#include <memory>
#include <string>

namespace iam_tokend {

// A co_spawn completion handler that logs what escaped `what` (and keeps
// `keep_alive`, if given, alive until the coroutine has finished).
inline auto log_escape(std::string what, std::shared_ptr<const void> keep_alive = nullptr) {
    return [what = std::move(what),
            keep_alive = std::move(keep_alive)](const std::exception_ptr& error) {
        if (!error) {
            return;
        }
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            spdlog::error("{} stopped: {}", what, e.what());
        }
    };
}

} // namespace iam_tokend
