#pragma once
/// The connections of this process's session actors, by actor address.
///
/// A conversation writes the frames for a subscriber whose session lives in
/// this process straight to that session's connection, instead of sending
/// them to the session actor to write: per chunk and subscriber that is one
/// actor message, one mailbox element and one hand-off between threads
/// less. Everything the conversation sends such a subscriber goes this way
/// (acks of its sends, messages, chunks, replays), so their order is the
/// order the conversation wrote them in; the session only hears which seqs
/// its client has whole (completed_atom). Sessions on other nodes are not
/// here and get events as before.

#include <caf/actor_addr.hpp>

#include "actors/client_link.hpp"

namespace chat::local_links {

/// Registers the connection of session `session` (until remove()).
void add(const caf::actor_addr& session, client_link_ptr link);
void remove(const caf::actor_addr& session);
/// The connection of `session` if it is a session of this process (an
/// empty pointer otherwise, or once the connection closed).
client_link_ptr find(const caf::actor_addr& session);

} // namespace chat::local_links
