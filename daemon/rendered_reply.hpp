// Replies of the local API as the bytes that go on the wire.
//
// A RenderedReply is made once and can be written to any number of clients:
// the token replies are rendered when their content changes, not for each
// request (see Router::answer_now), and the local server sends them with a
// single gathered write. The one part that differs between clients, the
// Connection field, is added by the server at send time.
#pragma once

#include "routes.hpp"

#include <string>
#include <string_view>

namespace iam_tokend {

struct RenderedReply {
    unsigned status = 200;
    // The status line and the header fields, every line ending in CRLF,
    // without the empty line that ends the header block.
    std::string head;
    std::string body;
};

// "HTTP/1.1 <status> <reason>", then Server, Content-Type, the reply's own
// header fields and Content-Length. HTTP/1.1 is the right version for a
// reply to an HTTP/1.0 request too (RFC 9110 §6.2).
RenderedReply render(LocalReply reply);

// What ends the header block of a reply: the Connection field when one is
// needed, then the empty line. HTTP/1.1 keeps a connection open unless told
// otherwise; HTTP/1.0 closes it unless told otherwise.
std::string_view end_of_head(unsigned request_version, bool keep_alive);

} // namespace iam_tokend
