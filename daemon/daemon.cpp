#include "daemon.hpp"

#include "file_sink.hpp"
#include "log.hpp"
#include "secret.hpp"
#include "state_file.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <iterator>
#include <stdexcept>

#include <sys/resource.h>

namespace iam_tokend {
namespace asio = boost::asio;

namespace {

// Many clients at once must queue, not fail on the descriptor limit.
void raise_open_file_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

constexpr std::chrono::milliseconds stop_poll_interval{20};

} // namespace

std::vector<std::string> secret_problems(const Config& config) {
    std::vector<std::string> problems;
    for (const auto& [name, profile] : config.profiles) {
        auto secret = load_secret(profile.secret);
        if (!secret.ok()) {
            problems.push_back("profiles." + name + "." + profile.secret.key + ": " + secret.error);
        }
    }
    return problems;
}

Daemon::Daemon(std::string config_path, Config config)
    : config_path_(std::move(config_path)),
      config_(std::move(config)),
      router_(profiles_, &metrics_),
      signals_(io_, SIGTERM, SIGINT, SIGHUP),
      stop_timer_(io_),
      systemd_(io_.get_executor(), profiles_, config_.startup_timeout),
      reload_timer_(io_) {
    raise_open_file_limit();
    std::signal(SIGPIPE, SIG_IGN);
    if (config_.state_dir) {
        if (auto problem = prepare_state_dir(*config_.state_dir)) {
            spdlog::error("state_dir: {}; tokens will not survive a restart", *problem);
        } else {
            state_dir_ = config_.state_dir;
        }
    }
    profiles_ = make_profiles(config_, nullptr);
    if (auto passed = socket_from_systemd()) {
        server_ =
            std::make_unique<LocalServer>(io_.get_executor(), router_, config_.socket, *passed);
    } else {
        server_ = std::make_unique<LocalServer>(io_.get_executor(), router_, config_.socket);
    }
    server_->set_metrics(&metrics_);
}

// Metrics, the file sink and the state file follow the source's tokens. The
// state file comes last: it may hand the source a saved token, which the
// others must see too.
void Daemon::attach_outputs(TokenSource& source) {
    metrics_.watch(source);
    FileSink::attach(source);
    if (state_dir_) {
        StateFile::attach(source, *state_dir_);
    }
}

Profiles Daemon::make_profiles(const Config& config, const Profiles* current) {
    Profiles profiles;
    profiles.default_name = config.default_profile;
    for (const auto& [name, profile] : config.profiles) {
        auto secret = load_secret(profile.secret);
        if (!secret.ok()) {
            throw std::runtime_error("profiles." + name + ": " + secret.error);
        }

        // An unchanged profile keeps its source, and with it its token.
        std::shared_ptr<TokenSource> previous;
        if (current != nullptr) {
            auto it = current->sources.find(name);
            if (it != current->sources.end() && it->second->profile() == profile &&
                it->second->secret() == secret.value) {
                profiles.sources[name] = it->second;
                continue;
            }
            previous = it != current->sources.end() ? it->second : nullptr;
        }
        auto source =
            std::make_shared<TokenSource>(io_.get_executor(), profile, std::move(secret.value));
        attach_outputs(*source);
        // A changed one logs in afresh, and serves the old token meanwhile.
        if (previous) {
            source->serve_meanwhile(*previous);
        }
        profiles.sources[name] = std::move(source);
    }
    return profiles;
}

int Daemon::run() {
    spdlog::info("iam-tokend {} starting with {} profile(s) from {}",
                 IAM_TOKEND_VERSION,
                 profiles_.sources.size(),
                 config_path_);
    for (auto& [name, source] : profiles_.sources) {
        source->start();
    }
    server_->start();
    systemd_.start();
    wait_for_signal();

    io_.run();
    spdlog::info("iam-tokend stopped");
    return 0;
}

void Daemon::wait_for_signal() {
    signals_.async_wait([this](boost::system::error_code ec, int number) {
        if (!ec) {
            on_signal(number);
        }
    });
}

void Daemon::on_signal(int number) {
    if (number == SIGHUP) {
        schedule_reload();
        wait_for_signal();
        return;
    }
    spdlog::info("received {}, stopping", number == SIGTERM ? "SIGTERM" : "SIGINT");
    begin_stop();
}

// Reloads once for a burst of SIGHUPs, such as a config tool that signals
// after each file it writes. Nothing that goes wrong in a reload may end
// the daemon.
void Daemon::schedule_reload() {
    if (reload_scheduled_) {
        spdlog::debug("received SIGHUP; a reload is already due");
        return;
    }
    reload_scheduled_ = true;
    reload_timer_.expires_after(reload_delay);
    reload_timer_.async_wait([this](boost::system::error_code ec) {
        reload_scheduled_ = false;
        if (ec || stopping_) {
            return;
        }
        systemd_.reloading();
        try {
            reload();
        } catch (const std::exception& e) {
            spdlog::error("reload failed: {}; the running configuration stays in force", e.what());
        }
        systemd_.reloaded();
    });
}

void Daemon::reload() {
    spdlog::info("received SIGHUP, reloading {}", config_path_);
    auto loaded = load_config(config_path_);
    std::vector<std::string> problems = loaded.problems;
    if (loaded.config) {
        std::ranges::move(secret_problems(*loaded.config), std::back_inserter(problems));
    }
    if (!problems.empty()) {
        // The same lines check-config prints.
        for (const auto& problem : problems) {
            spdlog::warn("{}: {}", config_path_, problem);
        }
        spdlog::warn("reload rejected ({} problem(s)); the running configuration stays in force",
                     problems.size());
        return;
    }

    Profiles next;
    try {
        next = make_profiles(*loaded.config, &profiles_);
    } catch (const std::exception& e) {
        spdlog::warn("reload rejected: {}; the running configuration stays in force", e.what());
        return;
    }

    if (loaded.config->socket != config_.socket) {
        spdlog::warn("socket settings changed; they take effect at the next restart");
    }
    if (loaded.config->state_dir != config_.state_dir) {
        spdlog::warn("state_dir changed; it takes effect at the next restart");
    }

    for (auto& [name, source] : profiles_.sources) {
        auto it = next.sources.find(name);
        if (it == next.sources.end() || it->second != source) {
            source->stop();
        }
    }
    for (auto& [name, source] : next.sources) {
        source->start();
    }

    setup_logging(loaded.config->log);
    loaded.config->socket = config_.socket;
    config_ = std::move(*loaded.config);
    profiles_ = std::move(next);
    spdlog::info("reloaded: {} profile(s), default {}",
                 profiles_.sources.size(),
                 profiles_.default_name);
}

void Daemon::begin_stop() {
    if (stopping_) {
        return;
    }
    stopping_ = true;
    systemd_.stopping();
    signals_.cancel();
    server_->stop();
    for (auto& [name, source] : profiles_.sources) {
        source->stop();
    }
    stop_deadline_ = std::chrono::steady_clock::now() + stop_grace;
    finish_stop_when_idle();
}

// Replies under way get up to stop_grace to finish; then the loop ends,
// abandoning any IAM exchange still in progress.
void Daemon::finish_stop_when_idle() {
    if (server_->busy() == 0 || std::chrono::steady_clock::now() >= stop_deadline_) {
        io_.stop();
        return;
    }
    stop_timer_.expires_after(stop_poll_interval);
    stop_timer_.async_wait([this](boost::system::error_code ec) {
        if (!ec) {
            finish_stop_when_idle();
        }
    });
}

} // namespace iam_tokend
