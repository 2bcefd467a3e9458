// Replacing a small file so that a reader only ever sees the old content or
// the new, never a mix, and a crash never leaves a half-written file behind.
//
// The new content goes to a temporary file in the same folder (created with
// the final mode before any byte is written), is flushed to disk, and is then
// renamed over the old file; the folder is flushed too, so the rename itself
// survives a power cut. Used for the file sinks and the state files.
//
// The calls block the calling thread for the two fsyncs. The files are tiny
// and written once per token, so this stays short on ordinary disks; on very
// slow storage it delays local replies by the time the disk takes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <sys/types.h>

namespace iam_tokend {

// Writes `content` to `path` with permission bits `mode`. Returns what went
// wrong, naming the path and the failing step but never the content; nothing
// on success.
std::optional<std::string>
write_file_atomically(const std::string& path, std::string_view content, mode_t mode);

} // namespace iam_tokend
