#include "actors/placement.hpp"

namespace chat {

uint64_t stable_hash(const std::string& text) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  // FNV-1a mixes its last bytes weakly: finish with a 64-bit avalanche
  // (murmur3's fmix64) so close ids spread evenly.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

std::string owner_of(const std::string& conversation_id, const cluster_members& members) {
  const cluster_member* best = nullptr;
  uint64_t best_score = 0;
  for (auto& m : members) {
    auto score = stable_hash(m.process_id + "/" + conversation_id);
    // Ties (astronomically rare) go to the smaller id, the same everywhere.
    if (best == nullptr || score > best_score
        || (score == best_score && m.process_id < best->process_id)) {
      best = &m;
      best_score = score;
    }
  }
  return best != nullptr ? best->process_id : std::string{};
}

} // namespace chat
