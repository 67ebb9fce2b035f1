#pragma once
/// What must never leak, watched across every integration test: the
/// harness remembers each secret it hands out (the JWT secret, the provider
/// API keys, every token) and each message content a test sends, and checks
/// chatd's log, its /metrics and every error a client gets (WebSocket
/// `error` frames, HTTP error bodies) against them. User ids are remembered
/// too: logs may name users (operators need that), /metrics must not.
///
/// Safe to call from several threads (some tests send from threads).

#include <cstddef>
#include <string>

namespace chat::test::leak_watch {

void secret(const std::string& s);
/// A message's content; mock directives ([[mock ...]]) are cut off, and a
/// content shorter than 12 bytes is not watched (it would match by chance).
void content(const std::string& s);
void user(const std::string& id);

/// Where the record stands now: a service checks what was remembered after
/// it started.
size_t mark();

/// CHECKs (doctest) that `text` holds nothing remembered since `from`:
/// no secret or content, and with `no_users` no user id either. `what`
/// names the text in the failure message.
void check(const std::string& what, const std::string& text, size_t from = 0,
           bool no_users = false);

} // namespace chat::test::leak_watch
