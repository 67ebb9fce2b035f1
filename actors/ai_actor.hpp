#pragma once
/// The interface of the AI invoker pool. Implemented in ai/ (libcurl multi),
/// or by a stand-in in actor tests.
///
/// Messages:
///
///   (generate_atom, generation_request, reply_sink sink) -> caf::actor
///       Start streaming a reply. The answer is the handle of the invoker
///       that owns the stream (send `ai_cancel_atom` there). The invoker
///       then sends to `sink`, in order:
///         (ai_chunk_atom, std::string stream_id, std::string delta)   0..n
///         (ai_done_atom, std::string stream_id, generation_outcome)   once
///       `delta` is never empty; it may hold several provider tokens.
///   (ai_cancel_atom, std::string stream_id)
///       Abort the provider request at once; the stream then ends with
///       `ai_done_atom` and finish_reason "cancelled". Unknown ids are
///       ignored.
///
/// A pool is several invoker actors behind one handle; each invoker drives
/// many concurrent provider streams (no thread per stream).

#include <string>

#include <caf/actor.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/messages.hpp"

namespace chat {

/// What the invoker sends for a stream: a conversation (its interface
/// includes this one) or, in tests, whatever records it. Typed, so that an
/// invoker cannot send anything a conversation would not understand.
using reply_sink = caf::typed_actor<caf::reacts_to<ai_chunk_atom, std::string, std::string>,
                                    caf::reacts_to<ai_done_atom, std::string, generation_outcome>>;

using ai_actor = caf::typed_actor<
    caf::replies_to<generate_atom, generation_request, reply_sink>::with<caf::actor>,
    caf::reacts_to<ai_cancel_atom, std::string>>;

} // namespace chat
