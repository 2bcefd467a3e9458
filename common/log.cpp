#include "log.hpp"

#include <openssl/evp.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <array>
#include <cstdlib>

namespace iam_tokend {

namespace {

// `%*` in a pattern: the level as a syslog priority in angle brackets.
class SyslogPriorityFlag final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& message,
                const std::tm& /*time*/,
                spdlog::memory_buf_t& out) override {
        std::string_view prefix = priority(message.level);
        out.append(prefix.data(), prefix.data() + prefix.size());
    }

    std::unique_ptr<custom_flag_formatter> clone() const override {
        return std::make_unique<SyslogPriorityFlag>();
    }

private:
    static std::string_view priority(spdlog::level::level_enum level) {
        switch (level) {
        case spdlog::level::critical:
            return "<2>";
        case spdlog::level::err:
            return "<3>";
        case spdlog::level::warn:
            return "<4>";
        case spdlog::level::info:
            return "<6>";
        default:
            return "<7>";
        }
    }
};

bool journal_wanted(LogFormat format) {
    if (format == LogFormat::automatic) {
        return std::getenv("JOURNAL_STREAM") != nullptr;
    }
    return format == LogFormat::journal;
}

} // namespace

void setup_logging(const LogSettings& settings) {
    auto logger = spdlog::get("iam-tokend");
    if (!logger) {
        logger = spdlog::stderr_logger_st("iam-tokend");
        spdlog::set_default_logger(logger);
    }

    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    if (journal_wanted(settings.format)) {
        formatter->add_flag<SyslogPriorityFlag>('*').set_pattern("%*%v");
    } else {
        formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    }
    logger->set_formatter(std::move(formatter));
    logger->set_level(spdlog::level::from_str(settings.level));
    logger->flush_on(spdlog::level::trace);
}

std::string fingerprint(std::string_view secret) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    EVP_Digest(secret.data(), secret.size(), digest.data(), &length, EVP_sha256(), nullptr);

    constexpr std::string_view hex = "0123456789abcdef";
    std::string out;
    for (unsigned int i = length - 2; i < length; ++i) {
        out += hex[digest[i] >> 4U];
        out += hex[digest[i] & 0xfU];
    }
    return out;
}

} // namespace iam_tokend
