#pragma once
/// Which node of the cluster a conversation lives on.
///
/// Rendezvous (highest random weight) hashing of the conversation id over
/// the live members: every node computes the same owner from the same
/// membership view, with no table to write or read per conversation, and
/// when a member joins or goes only the conversations it wins or held move
/// (about 1/N of them), not all. An ownership table would cost a database
/// round trip per placement and a second source of truth beside the
/// membership table; the database still decides every seq, and the fencing
/// of a disagreeing owner comes from there, not from placement.

#include <string>

#include "actors/messages.hpp"

namespace chat {

/// The process id of the member that owns `conversation_id`; empty when
/// there are no members (a single node: it owns everything).
std::string owner_of(const std::string& conversation_id, const cluster_members& members);

/// A stable 64-bit hash (FNV-1a), the same on every node and build.
uint64_t stable_hash(const std::string& text);

} // namespace chat
