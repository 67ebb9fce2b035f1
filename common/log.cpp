#include "common/log.hpp"

#include <atomic>
#include <chrono>
#include <ctime>
#include <memory>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace chat::log {

namespace {

std::atomic<int> current_level{static_cast<int>(level::info)};
std::string node_name; // set once at start-up, before any thread logs

const char* level_name(level lvl) {
  switch (lvl) {
    case level::debug:
      return "debug";
    case level::info:
      return "info";
    case level::warn:
      return "warn";
    default:
      return "error";
  }
}

// spdlog owns the output: a thread-safe stderr sink that writes each line
// whole. We only format the JSON object.
spdlog::logger& sink() {
  static auto logger = [] {
    auto l = std::make_shared<spdlog::logger>("chat",
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_pattern("%v");
    l->set_level(spdlog::level::trace);
    l->flush_on(spdlog::level::trace);
    return l;
  }();
  return *logger;
}

void write_timestamp(rapidjson::Writer<rapidjson::StringBuffer>& w) {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  auto n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%03dZ", static_cast<int>(ms % 1000));
  w.String(buf);
}

} // namespace

bool parse_level(std::string_view text, level& out) {
  if (text == "debug")
    out = level::debug;
  else if (text == "info")
    out = level::info;
  else if (text == "warn")
    out = level::warn;
  else if (text == "error")
    out = level::error;
  else
    return false;
  return true;
}

void set_level(level lvl) {
  current_level = static_cast<int>(lvl);
}

void set_node(std::string node) {
  node_name = std::move(node);
}

bool enabled(level lvl) {
  return static_cast<int>(lvl) >= current_level.load(std::memory_order_relaxed);
}

void write(level lvl, std::string_view event, fields fs) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w{buf};
  w.StartObject();
  w.Key("ts");
  write_timestamp(w);
  w.Key("level");
  w.String(level_name(lvl));
  w.Key("event");
  w.String(event.data(), static_cast<rapidjson::SizeType>(event.size()));
  if (!node_name.empty()) {
    w.Key("node");
    w.String(node_name.c_str());
  }
  for (auto& f : fs) {
    w.Key(f.key.data(), static_cast<rapidjson::SizeType>(f.key.size()));
    if (f.is_num)
      w.Int64(f.num);
    else if (f.is_dbl)
      w.Double(f.dbl);
    else if (f.is_bool)
      w.Bool(f.boolean);
    else
      w.String(f.str.data(), static_cast<rapidjson::SizeType>(f.str.size()));
  }
  w.EndObject();
  sink().info(std::string_view{buf.GetString(), buf.GetSize()});
}

} // namespace chat::log
