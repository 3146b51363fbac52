// remote_write_sender: sends a deterministic remote-write 1.0 load to a URL, one request per
// step, and records each acknowledged step. Used by the crash test (tests/e2e/crash_test.py)
// and as a simple load source.
//
// Series i (0 <= i < --series) is `<metric>{job="sender", series="<i>"}`; at step k its sample is
// (start + k * interval, i * 1e6 + k), so a retried or repeated step writes identical samples.
//
//   remote_write_sender --url=http://127.0.0.1:9201/api/v1/write --series=50 --steps=1000
//       --start-ms=... [--interval-ms=1000] [--first-step=0] [--metric=crash_metric]
//       [--acked=FILE]
//
// Exit: 0 when every step was acknowledged or the server went away (connection refused/reset:
// the crash test kills it); 1 when the server answered with a non-2xx status.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <string>

#include "httplib.h"
#include "ingest/proto/remote_write.pb.h"
#include "snappy.h"

namespace {

struct Flags {
  std::string url;
  std::string metric = "crash_metric";
  std::string acked;
  int64_t series = 10;
  int64_t steps = 100;
  int64_t first_step = 0;
  int64_t start_ms = 0;
  int64_t interval_ms = 1000;
};

bool ParseFlags(int argc, char** argv, Flags* f) {
  std::map<std::string, std::string> kv;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto eq = a.find('=');
    if (a.rfind("--", 0) != 0 || eq == std::string::npos) {
      std::cerr << "bad argument " << a << " (want --name=value)\n";
      return false;
    }
    kv[a.substr(2, eq - 2)] = a.substr(eq + 1);
  }
  auto num = [&](const char* k, int64_t* out) {
    if (auto it = kv.find(k); it != kv.end()) *out = std::strtoll(it->second.c_str(), nullptr, 10);
  };
  if (kv.count("url")) f->url = kv["url"];
  if (kv.count("metric")) f->metric = kv["metric"];
  if (kv.count("acked")) f->acked = kv["acked"];
  num("series", &f->series);
  num("steps", &f->steps);
  num("first-step", &f->first_step);
  num("start-ms", &f->start_ms);
  num("interval-ms", &f->interval_ms);
  if (f->url.empty()) {
    std::cerr << "--url is required\n";
    return false;
  }
  if (f->start_ms == 0) {
    f->start_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  }
  return true;
}

// Splits http://host:port/path into the client address and the path.
bool SplitUrl(const std::string& url, std::string* base, std::string* path) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return false;
  auto slash = url.find('/', scheme + 3);
  *base = url.substr(0, slash);
  *path = slash == std::string::npos ? "/" : url.substr(slash);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
  std::string base, path;
  if (!SplitUrl(flags.url, &base, &path)) {
    std::cerr << "bad --url " << flags.url << "\n";
    return 2;
  }
  httplib::Client client(base);
  client.set_connection_timeout(5);
  client.set_read_timeout(30);
  httplib::Headers headers = {{"Content-Encoding", "snappy"},
                              {"X-Prometheus-Remote-Write-Version", "0.1.0"}};
  std::ofstream acked;
  if (!flags.acked.empty()) acked.open(flags.acked, std::ios::app);

  tidemark::ingest::prompb::WriteRequest req;
  std::string raw, compressed;
  int64_t sent = 0;
  for (int64_t k = flags.first_step; k < flags.first_step + flags.steps; ++k) {
    req.Clear();
    for (int64_t i = 0; i < flags.series; ++i) {
      auto* ts = req.add_timeseries();
      auto* l = ts->add_labels();
      l->set_name("__name__");
      l->set_value(flags.metric);
      l = ts->add_labels();
      l->set_name("job");
      l->set_value("sender");
      l = ts->add_labels();
      l->set_name("series");
      l->set_value(std::to_string(i));
      auto* s = ts->add_samples();
      s->set_timestamp(flags.start_ms + k * flags.interval_ms);
      s->set_value(static_cast<double>(i * 1000000 + k));
    }
    req.SerializeToString(&raw);
    compressed.clear();
    snappy::Compress(raw.data(), raw.size(), &compressed);
    auto res = client.Post(path, headers, compressed, "application/x-protobuf");
    if (!res) {
      std::cout << "server gone after " << sent << " acknowledged requests: "
                << httplib::to_string(res.error()) << std::endl;
      return 0;
    }
    if (res->status / 100 != 2) {
      std::cout << "step " << k << ": HTTP " << res->status << ": " << res->body << std::endl;
      return 1;
    }
    ++sent;
    if (acked.is_open()) acked << k << std::endl;  // std::endl flushes: the test reads it live
  }
  std::cout << "all " << sent << " requests acknowledged" << std::endl;
  return 0;
}
