#include "failure.hpp"

#include <stdexcept>

namespace iam_tokend {

std::string_view to_string(FailureKind kind) {
    switch (kind) {
    case FailureKind::network:
        return "network";
    case FailureKind::tls:
        return "tls";
    case FailureKind::timeout:
        return "timeout";
    case FailureKind::http:
        return "http";
    case FailureKind::iam:
        return "iam";
    case FailureKind::bad_response:
        return "bad_response";
    case FailureKind::credential:
        return "credential";
    }
    return "unknown";
}

std::string Failure::describe() const {
    std::string text = message;
    std::string details;
    auto add = [&details](const std::string& part) {
        details += details.empty() ? "" : ", ";
        details += part;
    };
    if (http_status) {
        add("HTTP " + std::to_string(*http_status));
    }
    if (error_code) {
        add(*error_code);
    }
    if (request_id) {
        add("request " + *request_id);
    }
    if (!details.empty()) {
        text += " (" + details + ")";
    }
    return text;
}

void throw_exception_from_error(const Failure& failure,
                                const boost::source_location& /*location*/) {
    throw std::runtime_error(failure.describe());
}

} // namespace iam_tokend
