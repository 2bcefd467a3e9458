#include "atomic_file.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace iam_tokend {

namespace {

std::string problem(std::string what, int error) {
    return what + ": " + std::strerror(error);
}

// Closes the descriptor and removes the temporary file unless released.
class TempFile {
public:
    TempFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
    ~TempFile() {
        if (fd_ >= 0) {
            close(fd_);
        }
        if (!path_.empty()) {
            unlink(path_.c_str());
        }
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;

    int fd() const { return fd_; }
    const std::string& path() const { return path_; }

    // Closes the descriptor; returns errno on failure, 0 on success.
    int close_now() {
        int result = close(fd_);
        fd_ = -1;
        return result == 0 ? 0 : errno;
    }
    void keep() { path_.clear(); }

private:
    int fd_;
    std::string path_;
};

int write_all(int fd, std::string_view content) {
    while (!content.empty()) {
        ssize_t written = write(fd, content.data(), content.size());
        if (written < 0 && errno == EINTR) {
            continue;
        }
        if (written < 0) {
            return errno;
        }
        content.remove_prefix(static_cast<std::size_t>(written));
    }
    return 0;
}

// Makes a rename in `folder` durable.
void sync_folder(const std::string& folder) {
    int fd = open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

} // namespace

std::optional<std::string>
write_file_atomically(const std::string& path, std::string_view content, mode_t mode) {
    namespace fs = std::filesystem;
    std::string folder = fs::path(path).parent_path().string();
    if (folder.empty()) {
        folder = ".";
    }

    // A dot name keeps the temporary file out of `ls` and of most globs.
    std::string pattern = folder + "/." + fs::path(path).filename().string() + ".XXXXXX";
    int fd = mkostemp(pattern.data(), O_CLOEXEC);
    if (fd < 0) {
        return problem("cannot create a temporary file in " + folder, errno);
    }
    TempFile temp(fd, pattern);

    if (fchmod(temp.fd(), mode) != 0) {
        return problem("cannot set the mode of " + temp.path(), errno);
    }
    if (int error = write_all(temp.fd(), content); error != 0) {
        return problem("cannot write " + temp.path(), error);
    }
    if (fsync(temp.fd()) != 0) {
        return problem("cannot flush " + temp.path() + " to disk", errno);
    }
    if (int error = temp.close_now(); error != 0) {
        return problem("cannot close " + temp.path(), error);
    }

    if (rename(temp.path().c_str(), path.c_str()) != 0) {
        return problem("cannot rename " + temp.path() + " to " + path, errno);
    }
    temp.keep();
    sync_folder(folder);
    return std::nullopt;
}

} // namespace iam_tokend
