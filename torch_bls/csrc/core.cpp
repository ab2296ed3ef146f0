// core.cpp: a process group's life: MPI set up, the group's communicators, the threads,
// shutdown; and the requests (BlsWork) the calls return (bls_core.hpp).
#include "bls_core.hpp"
#include "util.hpp"

#include <c10/util/StringUtil.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <stdexcept>

namespace torch_bls {
namespace {

// Process-wide MPI state: which Cores are alive, and whether this module owns MPI.
std::mutex g_mu;
std::vector<std::weak_ptr<Core>> g_cores;
bool g_we_initialized = false;

const int kCreateTag = 0x6b15;  // MPI_Comm_create_group's tag
const auto kShutdownGrace = std::chrono::seconds(10);

void ensureMpi() {
  int finalized = 0, initialized = 0;
  MPI_Finalized(&finalized);
  if (finalized)
    throw std::runtime_error("bls: MPI is already finalized; no process group can be created");
  MPI_Initialized(&initialized);
  int provided = 0;
  if (!initialized) {
    checkMpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided),
             "MPI_Init_thread");
    g_we_initialized = true;
  } else {
    MPI_Query_thread(&provided);
  }
  if (provided < MPI_THREAD_MULTIPLE)
    throw std::runtime_error(
        "bls: MPI runs without MPI_THREAD_MULTIPLE (initialised elsewhere, or the MPI library "
        "lacks it); the backend's progress threads need it");
}

}  // namespace

// ---------------------------------------------------------------------------------- BlsWork

BlsWork::BlsWork(int rank, c10d::OpType op, std::string what, std::weak_ptr<Core> core,
                 std::chrono::milliseconds default_timeout)
    : c10d::Work(rank, op), what_(std::move(what)), core_(std::move(core)),
      default_timeout_(default_timeout) {}

bool BlsWork::wait(std::chrono::milliseconds timeout) {
  auto limit = timeout == kNoTimeout ? default_timeout_ : timeout;
  std::unique_lock<std::mutex> lock(mutex_);
  if (!cv_.wait_for(lock, limit, [this] { return completed_; })) {
    lock.unlock();
    std::string detail;
    if (auto core = core_.lock())
      detail = core->pending(*this);
    throw std::runtime_error(c10::str("bls: ", what_, " did not complete within ",
                                      static_cast<double>(limit.count()) / 1000.0, " s",
                                      detail, " (the call stays pending; wait again to retry)"));
  }
  if (exception_)
    std::rethrow_exception(exception_);
  return true;
}

std::vector<at::Tensor> BlsWork::result() { return outputs; }

void BlsWork::complete(std::exception_ptr error) { finish(std::move(error)); }

// ------------------------------------------------------------------------------------- Core

Core::Core(int rank, int size, std::chrono::milliseconds timeout, int lag)
    : rank_(rank), size_(size), timeout_(timeout), lag_(lag),
      counts_(4 * static_cast<size_t>(size)) {}

std::shared_ptr<Core> Core::create(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                   int size, std::chrono::milliseconds timeout, int lag) {
  TORCH_CHECK(lag >= 0, "bls: the lag bound must be >= 0 (got ", lag, ")");
  TORCH_CHECK(size >= 1 && rank >= 0 && rank < size, "bls: rank ", rank, " of ", size);
  std::lock_guard<std::mutex> guard(g_mu);
  ensureMpi();
  std::shared_ptr<Core> core(new Core(rank, size, timeout, lag));
  core->init(store);
  g_cores.push_back(core);
  return core;
}

void Core::init(const c10::intrusive_ptr<c10d::Store>& store) {
  int world_rank = 0, world_size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  TORCH_CHECK(world_size >= size_, "bls: the process group has ", size_,
              " processes but this process's MPI job has ", world_size,
              ": launch every process of the group with one mpirun (mpirun -np ", size_,
              " ...)");

  // Group rank -> MPI rank, agreed through the store (its keys are per group).
  std::string mine = std::to_string(world_rank);
  store->set("torch_bls/mpi_rank/" + std::to_string(rank_),
             std::vector<uint8_t>(mine.begin(), mine.end()));
  std::vector<int> world(static_cast<size_t>(size_));
  std::vector<int> owner(static_cast<size_t>(world_size), -1);
  for (int r = 0; r < size_; r++) {
    auto v = store->get("torch_bls/mpi_rank/" + std::to_string(r));
    int w = std::stoi(std::string(v.begin(), v.end()));
    TORCH_CHECK(w >= 0 && w < world_size, "bls: group rank ", r, " names MPI rank ", w,
                ", outside this MPI job of ", world_size);
    TORCH_CHECK(owner[static_cast<size_t>(w)] < 0, "bls: group ranks ",
                owner[static_cast<size_t>(w)], " and ", r, " are the same MPI process (rank ",
                w, "): RANK does not match the mpirun ranks, or two jobs share the store");
    owner[static_cast<size_t>(w)] = r;
    world[static_cast<size_t>(r)] = w;
  }

  MPI_Group world_group, group;
  MPI_Comm_group(MPI_COMM_WORLD, &world_group);
  MPI_Group_incl(world_group, size_, world.data(), &group);
  int rc = MPI_Comm_create_group(MPI_COMM_WORLD, group, kCreateTag, &group_comm_);
  MPI_Group_free(&group);
  MPI_Group_free(&world_group);
  checkMpi(rc, "MPI_Comm_create_group for the process group");
  MPI_Comm_set_errhandler(group_comm_, MPI_ERRORS_RETURN);
  checkMpi(MPI_Comm_dup(group_comm_, &coll_comm_), "MPI_Comm_dup");
  MPI_Comm_set_errhandler(coll_comm_, MPI_ERRORS_RETURN);
  // The dtype check is on for every process if it is on for one: a check some processes skip
  // would leave the others waiting in it.
  const char* check = std::getenv("TORCH_BLS_CHECK_DTYPES");
  int on = check && std::string(check) == "1", any = 0;
  checkMpi(MPI_Allreduce(&on, &any, 1, MPI_INT, MPI_MAX, group_comm_), "MPI_Allreduce");
  if (any) {
    checkMpi(MPI_Comm_dup(group_comm_, &check_comm_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(check_comm_, MPI_ERRORS_RETURN);
  }

  completion_thread_ = std::thread([this] { completionLoop(); });
  worker_thread_ = std::thread([this] { workerLoop(); });
}

Core::~Core() { shutdown(); }

c10::intrusive_ptr<BlsWork> Core::newWork(c10d::OpType op, const std::string& what) {
  return c10::make_intrusive<BlsWork>(rank_, op, what, weak_from_this(), timeout_);
}

// -------------------------------------------------------------------------------- shutdown

bool Core::shutdown() {
  std::lock_guard<std::mutex> guard(shutdown_mu_);
  if (down_ || group_comm_ == MPI_COMM_NULL)
    return !stuck_;
  {
    std::lock_guard<std::mutex> lock(notify_mu_);
    stop_ = true;
  }
  notify_cv_.notify_all();
  if (completion_thread_.joinable())
    completion_thread_.join();
  std::deque<std::pair<c10::intrusive_ptr<BlsWork>, std::function<void()>>> queued;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    down_ = true;
    queued.swap(queue_);
  }
  queue_cv_.notify_all();
  {
    // A call in progress finishes first (MPI cannot cancel a collective); one that a peer
    // never joins would block the process's exit forever, so it is left behind.
    std::unique_lock<std::mutex> lock(queue_mu_);
    stuck_ = !queue_cv_.wait_for(lock, kShutdownGrace, [this] { return worker_done_; });
  }
  if (stuck_) {
    worker_thread_.detach();
    std::string running;
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      running = running_;
    }
    fprintf(stderr, "bls: rank %d: a collective of the group (%s) was still blocked in MPI after "
            "%lld s at shutdown (a peer never joined it); leaving it and MPI unfinalized\n", rank_,
            running.c_str(), static_cast<long long>(kShutdownGrace.count()));
  } else if (worker_thread_.joinable()) {
    worker_thread_.join();
  }
  auto gone = [](const std::string& what) {
    return std::make_exception_ptr(std::runtime_error(
        c10::str("bls: ", what, ": the process group was shut down before it completed")));
  };
  for (auto& item : queued)
    item.first->complete(gone(item.first->what()));
  std::list<c10::intrusive_ptr<BlsWork>> inflight, done;
  {
    std::lock_guard<std::mutex> lock(a2a_mu_);
    reapLocked(done);
    inflight.swap(inflight_);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
      for (auto& size_comm : a2a_)
        bls_comm_destroy(size_comm.second);  // cancels what is in flight; tensors still held
      if (!stuck_) {
        MPI_Comm_free(&coll_comm_);
        if (check_comm_ != MPI_COMM_NULL)
          MPI_Comm_free(&check_comm_);
        MPI_Comm_free(&group_comm_);
      }
    }
    a2a_.clear();
  }
  releaseReaped(done);
  for (auto& w : inflight) {
    w->keep.clear();
    w->complete(gone(w->what()));
  }
  return !stuck_;
}

void Core::finalizeAll() {
  std::lock_guard<std::mutex> guard(g_mu);
  bool clean = true;
  for (auto& weak : g_cores)
    if (auto core = weak.lock())
      clean = core->shutdown() && clean;
  g_cores.clear();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (g_we_initialized && !finalized && clean)  // MPI_Finalize would wait for the stuck call
    MPI_Finalize();
}

}  // namespace torch_bls
