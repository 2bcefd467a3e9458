// Loading a profile's secret from a file, an environment variable or a
// systemd credential.
//
// Every message starts with the source's label, such as
// `api_key_file /etc/iam-tokend/apikey`, and says what went wrong; none of
// them is ever built from the bytes read, so no message can carry the
// secret.
#include "secret.hpp"

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace iam_tokend {
namespace {

// API keys are 44 characters and passwords short; a larger file is not a
// secret of ours, and reading it whole would waste memory.
constexpr std::size_t max_secret_bytes = std::size_t{64} * 1024;

// Editors and `echo` leave these at the end of a file or variable.
constexpr std::string_view trailing_space = " \t\r\n\v\f";

constexpr const char* credentials_dir_variable = "CREDENTIALS_DIRECTORY";

std::string label_of(const SecretSource& source) {
    std::string label = source.key;
    if (label.empty()) {
        switch (source.kind) {
        case SecretSource::Kind::file:
            label = "file";
            break;
        case SecretSource::Kind::env:
            label = "environment variable";
            break;
        case SecretSource::Kind::credential:
            label = "credential";
            break;
        }
    }
    return label + " " + source.name;
}

SecretResult failure(const std::string& label, std::string_view what) {
    SecretResult result;
    result.error = label + ": " + std::string(what);
    return result;
}

// Trims the value and refuses an empty one.
SecretResult accept(std::string value, const std::string& label) {
    std::size_t end = value.find_last_not_of(trailing_space);
    value.erase(end == std::string::npos ? 0 : end + 1);
    if (value.empty()) {
        return failure(label, "the secret is empty");
    }

    SecretResult result;
    result.value = std::move(value);
    return result;
}

// Closes a descriptor when it goes out of scope.
class FileDescriptor {
public:
    explicit FileDescriptor(int fd) : fd_(fd) {}
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;
    FileDescriptor(FileDescriptor&&) = delete;
    FileDescriptor& operator=(FileDescriptor&&) = delete;
    ~FileDescriptor() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    int get() const { return fd_; }

private:
    int fd_;
};

// Which permission bits make a secret file unusable. A key file of the
// operator's must be private to its owner. A credential is different:
// systemd puts it in a folder that only this service can enter and grants
// the service's user read access with an ACL, and an ACL shows in the
// mode's group bits (as 0440), so only the bits for others count there.
enum class Privacy { owner_only, not_others };

constexpr mode_t group_or_others_access = S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH;
constexpr mode_t others_access = S_IROTH | S_IWOTH;

// "0640": permission bits as chmod takes them.
std::string octal_mode(mode_t mode) {
    std::array<char, 8> digits{};
    auto [end, ec] = std::to_chars(digits.begin(), digits.end(), mode & 07777U, 8);
    std::string text(digits.begin(), end);
    return std::string(text.size() < 4 ? 4 - text.size() : 0, '0') + text;
}

// Whether an opened secret file may be read; returns why not, or nothing.
// Only regular files that no one else may read or change are read.
std::optional<std::string> unusable_file(const struct stat& info, Privacy privacy) {
    if (!S_ISREG(info.st_mode)) {
        return "not a regular file";
    }
    mode_t forbidden = privacy == Privacy::owner_only ? group_or_others_access : others_access;
    if ((info.st_mode & forbidden) != 0) {
        std::string who = privacy == Privacy::owner_only ? "group or others" : "others";
        return "mode " + octal_mode(info.st_mode) + " lets " + who +
               " read or write the secret; make it 0600 or 0400";
    }
    return std::nullopt;
}

SecretResult read_secret_file(const std::string& path, const std::string& label, Privacy privacy) {
    // O_NONBLOCK keeps a FIFO from blocking the open; it is refused below.
    FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (fd.get() < 0) {
        return failure(label, std::strerror(errno));
    }
    struct stat info {};
    if (::fstat(fd.get(), &info) != 0) {
        return failure(label, std::strerror(errno));
    }
    if (auto why = unusable_file(info, privacy)) {
        return failure(label, *why);
    }

    // One byte more than the limit tells a full-size file from a larger one.
    std::string value(max_secret_bytes + 1, '\0');
    std::size_t size = 0;
    while (size < value.size()) {
        ssize_t n = ::read(fd.get(), value.data() + size, value.size() - size);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return failure(label, std::strerror(errno));
        }
        if (n == 0) {
            break;
        }
        size += static_cast<std::size_t>(n);
    }
    if (size > max_secret_bytes) {
        return failure(label, "larger than " + std::to_string(max_secret_bytes) + " bytes");
    }
    value.resize(size);
    return accept(std::move(value), label);
}

SecretResult read_env(const SecretSource& source, const std::string& label) {
    const char* value = std::getenv(source.name.c_str());
    if (value == nullptr) {
        return failure(label, "the variable is not set");
    }
    return accept(value, label);
}

// A credential is a file that systemd placed in $CREDENTIALS_DIRECTORY
// (LoadCredential= or SetCredential= in the unit).
SecretResult read_credential(const SecretSource& source, const std::string& label) {
    const std::string& name = source.name;
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
        return failure(label, "a credential name must be a plain file name");
    }
    const char* dir = std::getenv(credentials_dir_variable);
    if (dir == nullptr || *dir == '\0') {
        return failure(label,
                       std::string(credentials_dir_variable) +
                           " is not set (is the credential loaded by the unit?)");
    }

    std::string path = std::string(dir) + "/" + name;
    return read_secret_file(path, label + " (" + path + ")", Privacy::not_others);
}

} // namespace

SecretResult load_secret(const SecretSource& source) {
    std::string label = label_of(source);
    switch (source.kind) {
    case SecretSource::Kind::file:
        return read_secret_file(source.name, label, Privacy::owner_only);
    case SecretSource::Kind::env:
        return read_env(source, label);
    case SecretSource::Kind::credential:
        return read_credential(source, label);
    }
    return failure(label, "unknown secret source");
}

} // namespace iam_tokend
