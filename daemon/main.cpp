// iam-tokend: one binary, the daemon and its clients (DESIGN §5).
//
// Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
#include "config.hpp"
#include "daemon.hpp"
#include "local_client.hpp"
#include "log.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace iam_tokend;
namespace json = boost::json;

constexpr int exit_ok = 0;
constexpr int exit_failure = 1;
constexpr int exit_usage = 2;

constexpr const char* usage_text = R"(Usage: iam-tokend COMMAND [OPTIONS]

A local daemon that keeps an IBM Cloud IAM token fresh and serves it over a
Unix socket.

Commands:
  run [-c FILE]               run the daemon (default config
                              /etc/iam-tokend/config.json)
  token [--profile P] [--format raw|header|json] [--kind iam|uaa]
        [--min-valid S] [--wait S] [--socket PATH]
                              print the current token (default format raw;
                              --kind uaa: the profile's UAA token)
  status [--json] [--socket PATH]
                              show every profile's state
  check-config -c FILE        validate a config file and its secret sources

Options:
  --socket PATH   the daemon's socket (default $IAM_TOKEND_SOCKET, else
                  /run/iam-tokend/tokend.sock)
  --version       print the version
  --help          print this text

Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
)";

struct Arguments {
    std::string command;
    std::map<std::string, std::string> options; // "--profile" -> "p"
    std::vector<std::string> errors;
};

// Parses `COMMAND [--flag] [--option VALUE | --option=VALUE]...`.
Arguments parse_arguments(int argc, char** argv, const std::vector<std::string>& with_value) {
    Arguments args;
    std::vector<std::string> words(argv + 1, argv + argc);
    for (std::size_t i = 0; i < words.size(); ++i) {
        std::string word = words[i];
        if (args.command.empty() && !word.starts_with("-")) {
            args.command = word;
            continue;
        }
        if (!word.starts_with("-")) {
            args.errors.push_back("unexpected argument: " + word);
            continue;
        }
        std::string value;
        bool has_value = false;
        if (auto eq = word.find('='); eq != std::string::npos) {
            value = word.substr(eq + 1);
            word = word.substr(0, eq);
            has_value = true;
        }
        if (word == "-c") {
            word = "--config";
        }
        bool wants_value = std::ranges::find(with_value, word) != with_value.end();
        if (wants_value && !has_value) {
            if (i + 1 >= words.size()) {
                args.errors.push_back(word + " needs a value");
                continue;
            }
            value = words[++i];
        }
        args.options[word] = value;
    }
    return args;
}

std::string socket_path(const Arguments& args) {
    if (auto it = args.options.find("--socket"); it != args.options.end()) {
        return it->second;
    }
    return client_socket_path();
}

std::optional<std::string> option(const Arguments& args, const std::string& name) {
    auto it = args.options.find(name);
    return it == args.options.end() ? std::nullopt : std::optional(it->second);
}

int fail_usage(const std::string& message) {
    std::cerr << "iam-tokend: " << message << "\nTry 'iam-tokend --help'.\n";
    return exit_usage;
}

// The daemon's error message from a JSON error body, or the raw body.
std::string reply_message(const LocalResponse& response) {
    boost::system::error_code ec;
    auto body = json::parse(response.body, ec);
    if (!ec && body.is_object() && body.as_object().contains("message")) {
        const auto& object = body.as_object();
        return json::value_to<std::string>(object.at("message"));
    }
    return "HTTP " + std::to_string(response.status);
}

bool allowed_options(const Arguments& args, const std::vector<std::string>& known) {
    for (const auto& [name, value] : args.options) {
        if (std::ranges::find(known, name) == known.end()) {
            fail_usage("unknown option for " + args.command + ": " + name);
            return false;
        }
    }
    return true;
}

int command_run(const Arguments& args) {
    // Until the daemon handles SIGHUP (a reload), one must not end it.
    std::signal(SIGHUP, SIG_IGN);
    std::string path = option(args, "--config").value_or(default_config_path);
    auto loaded = load_config(path);
    if (!loaded.config) {
        for (const auto& problem : loaded.problems) {
            std::cerr << path << ": " << problem << "\n";
        }
        return exit_usage;
    }
    setup_logging(loaded.config->log);

    try {
        Daemon daemon(path, std::move(*loaded.config));
        return daemon.run();
    } catch (const std::exception& e) {
        spdlog::error("cannot start: {}", e.what());
        return exit_failure;
    }
}

int command_check_config(const Arguments& args) {
    auto path = option(args, "--config");
    if (!path) {
        return fail_usage("check-config needs -c FILE");
    }
    auto loaded = load_config(*path);
    std::vector<std::string> problems = loaded.problems;
    if (loaded.config) {
        std::ranges::move(secret_problems(*loaded.config), std::back_inserter(problems));
    }
    for (const auto& problem : problems) {
        std::cerr << *path << ": " << problem << "\n";
    }
    if (!problems.empty()) {
        return exit_usage;
    }
    std::cout << *path << ": ok (" << loaded.config->profiles.size() << " profile(s))\n";
    return exit_ok;
}

int command_token(const Arguments& args) {
    std::string format = option(args, "--format").value_or("raw");
    if (format != "raw" && format != "header" && format != "json") {
        return fail_usage("--format must be raw, header or json");
    }
    TokenQuery query;
    query.kind = option(args, "--kind").value_or("");
    if (!query.kind.empty() && query.kind != "iam" && query.kind != "uaa") {
        return fail_usage("--kind must be iam or uaa");
    }
    query.profile = option(args, "--profile").value_or("");
    query.format = format;
    query.wait = option(args, "--wait").value_or("");
    query.min_valid = option(args, "--min-valid").value_or("");
    auto response = fetch_token(query, socket_path(args));
    if (!response.error.empty()) {
        std::cerr << "iam-tokend: " << response.error << "\n";
        return exit_failure;
    }
    if (response.status != 200) {
        std::cerr << "iam-tokend: " << reply_message(response) << "\n";
        return exit_failure;
    }
    std::cout << response.body << "\n";
    return exit_ok;
}

std::string cell(const json::value& value, const char* unit = "") {
    if (value.is_null()) {
        return "-";
    }
    if (value.is_string()) {
        return std::string(value.get_string());
    }
    return json::serialize(value) + unit;
}

void print_status_table(const json::object& status) {
    std::printf("%-16s %-10s %-11s %-13s %-9s %s\n",
                "PROFILE",
                "STATE",
                "EXPIRES IN",
                "NEXT REFRESH",
                "FAILURES",
                "LAST ERROR");
    for (const auto& [name, entry] : status.at("profiles").as_object()) {
        const auto& profile = entry.as_object();
        std::string last_error = "-";
        if (const auto& error = profile.at("last_error"); error.is_object()) {
            const auto& object = error.as_object();
            last_error = cell(object.at("kind")) + ": " + cell(object.at("message"));
            if (!object.at("error_code").is_null()) {
                last_error += " [" + cell(object.at("error_code")) + "]";
            }
        }
        std::printf("%-16s %-10s %-11s %-13s %-9s %s\n",
                    std::string(name).c_str(),
                    cell(profile.at("state")).c_str(),
                    cell(profile.at("expires_in"), "s").c_str(),
                    cell(profile.at("next_refresh_in"), "s").c_str(),
                    cell(profile.at("consecutive_failures")).c_str(),
                    last_error.c_str());
    }
}

int command_status(const Arguments& args) {
    auto response = local_request(socket_path(args), "GET", "/v1/status", reply_margin);
    if (!response.error.empty()) {
        std::cerr << "iam-tokend: " << response.error << "\n";
        return exit_failure;
    }
    if (response.status != 200) {
        std::cerr << "iam-tokend: " << reply_message(response) << "\n";
        return exit_failure;
    }
    if (args.options.contains("--json")) {
        std::cout << response.body << "\n";
        return exit_ok;
    }

    boost::system::error_code ec;
    auto status = json::parse(response.body, ec);
    if (ec || !status.is_object()) {
        std::cerr << "iam-tokend: the daemon's status is not JSON\n";
        return exit_failure;
    }
    try {
        print_status_table(status.as_object());
    } catch (const std::exception& e) {
        std::cerr << "iam-tokend: unexpected status reply: " << e.what() << "\n";
        return exit_failure;
    }
    return exit_ok;
}

} // namespace

int main(int argc, char** argv) {
    auto args = parse_arguments(
        argc,
        argv,
        {"--config", "--profile", "--format", "--kind", "--min-valid", "--wait", "--socket"});
    if (args.options.contains("--help") || args.command == "help") {
        std::cout << usage_text;
        return exit_ok;
    }
    if (args.options.contains("--version")) {
        std::cout << "iam-tokend " << IAM_TOKEND_VERSION << "\n";
        return exit_ok;
    }
    if (!args.errors.empty()) {
        return fail_usage(args.errors.front());
    }

    if (args.command == "run" && allowed_options(args, {"--config"})) {
        return command_run(args);
    }
    if (args.command == "check-config" && allowed_options(args, {"--config"})) {
        return command_check_config(args);
    }
    if (args.command == "token" &&
        allowed_options(args,
                        {"--profile", "--format", "--kind", "--min-valid", "--wait", "--socket"})) {
        return command_token(args);
    }
    if (args.command == "status" && allowed_options(args, {"--json", "--socket"})) {
        return command_status(args);
    }
    if (args.command == "run" || args.command == "check-config" || args.command == "token" ||
        args.command == "status") {
        return exit_usage; // allowed_options() has said what is wrong
    }
    if (args.command.empty()) {
        std::cerr << usage_text;
        return exit_usage;
    }
    return fail_usage("unknown command: " + args.command);
}
