// bls_core.cpp: the backend's MPI and libbls side (see bls_core.hpp).
#include "bls_core.hpp"

#include <c10/util/StringUtil.h>

#include <climits>
#include <cstdio>
#include <cstdint>
#include <stdexcept>
#include <unistd.h>

namespace torch_bls {
namespace {

// Process-wide MPI state: which Cores are alive, and whether this module owns MPI.
std::mutex g_mu;
std::vector<std::weak_ptr<Core>> g_cores;
bool g_we_initialized = false;

const int kCreateTag = 0x6b15;        // MPI_Comm_create_group's tag
const int64_t kChunkBytes = 1 << 30;  // MPI counts are int: larger buffers go in chunks
const auto kShutdownGrace = std::chrono::seconds(10);

std::string mpiMessage(int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
    return "MPI error " + std::to_string(rc);
  return std::string(text, static_cast<size_t>(len));
}

void checkMpi(int rc, const char* what) {
  if (rc != MPI_SUCCESS)
    throw std::runtime_error(c10::str("bls: ", what, " failed: ", mpiMessage(rc)));
}

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

void checkCpuDense(const at::Tensor& t, const char* op, const char* which) {
  TORCH_CHECK(t.device().is_cpu(), "bls: ", op, ": ", which, " is on ", t.device(),
              "; this backend moves CPU tensors only");
  TORCH_CHECK(t.layout() == c10::kStrided, "bls: ", op, ": ", which,
              " must be a dense (strided) tensor");
}

int64_t nbytes(const at::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); }

int intCount(int64_t bytes, const char* op) {
  TORCH_CHECK(bytes <= INT_MAX, "bls: ", op, ": ", bytes,
              " bytes per process exceed the 2 GiB an MPI call takes; split the tensor");
  return static_cast<int>(bytes);
}

// Elements per row: the product of all dimensions but the first (1 for a 1-D tensor).
int64_t rowElems(const at::Tensor& t) {
  int64_t n = 1;
  for (int64_t d = 1; d < t.dim(); d++)
    n *= t.size(d);
  return n;
}

// Rows per peer: the given splits (checked), or an equal split of dim 0.
std::vector<int64_t> splitRows(const at::Tensor& t, const std::vector<int64_t>& splits, int P,
                               const char* which) {
  int64_t rows = t.dim() == 0 ? 1 : t.size(0);
  if (splits.empty()) {
    TORCH_CHECK(rows % P == 0, "bls: all_to_all_single: the ", which, " has ", rows,
                " rows, not divisible by the group size ", P, "; pass ", which,
                "_split_sizes");
    return std::vector<int64_t>(static_cast<size_t>(P), rows / P);
  }
  TORCH_CHECK(static_cast<int>(splits.size()) == P, "bls: all_to_all_single: ", which,
              "_split_sizes has ", splits.size(), " entries for a group of ", P);
  int64_t sum = 0;
  for (size_t q = 0; q < splits.size(); q++) {
    TORCH_CHECK(splits[q] >= 0, "bls: all_to_all_single: ", which, "_split_sizes[", q,
                "] = ", splits[q], " is negative");
    sum += splits[q];
  }
  TORCH_CHECK(sum == rows, "bls: all_to_all_single: ", which, "_split_sizes sum to ", sum,
              " but the ", which, " has ", rows, " rows");
  return splits;
}

MPI_Datatype mpiType(c10::ScalarType s) {
  switch (s) {
    case c10::kFloat: return MPI_FLOAT;
    case c10::kDouble: return MPI_DOUBLE;
    case c10::kLong: return MPI_INT64_T;
    case c10::kInt: return MPI_INT32_T;
    case c10::kShort: return MPI_INT16_T;
    case c10::kChar: return MPI_INT8_T;
    case c10::kByte: return MPI_UINT8_T;
    default: return MPI_DATATYPE_NULL;
  }
}

MPI_Op mpiOp(const c10d::ReduceOp& op) {
  switch (static_cast<c10d::ReduceOp::RedOpType>(op)) {
    case c10d::ReduceOp::SUM: return MPI_SUM;
    case c10d::ReduceOp::PRODUCT: return MPI_PROD;
    case c10d::ReduceOp::MIN: return MPI_MIN;
    case c10d::ReduceOp::MAX: return MPI_MAX;
    default: return MPI_OP_NULL;
  }
}

// libbls counts in elements of the communicator's datatype, which is MPI_BYTE here.
std::string inBytes(std::string msg) {
  for (size_t at = 0; (at = msg.find(" elements", at)) != std::string::npos; at += 6)
    msg.replace(at, 9, " bytes");
  return msg;
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

  bls_config_t cfg;
  bls_config_init(&cfg);
  cfg.mode = BLS_MODE_BLS;
  cfg.lag = lag_;
  cfg.datatype = MPI_BYTE;
  cfg.max_block = INT_MAX;
  cfg.timeout = static_cast<double>(timeout_.count()) / 1000.0;
  if (bls_comm_create(group_comm_, &cfg, &a2a_) != BLS_OK) {
    std::string msg = bls_last_error();
    MPI_Comm_free(&coll_comm_);
    MPI_Comm_free(&group_comm_);
    throw std::runtime_error("bls: creating the all_to_all_single communicator: " + msg);
  }
  bls_comm_set_notify(a2a_, &Core::onComplete, this);
  completion_thread_ = std::thread([this] { completionLoop(); });
  worker_thread_ = std::thread([this] { workerLoop(); });
}

Core::~Core() { shutdown(); }

void Core::onComplete(void* arg, bls_iter_t /*iter*/) {
  auto* core = static_cast<Core*>(arg);
  std::lock_guard<std::mutex> lock(core->notify_mu_);
  core->notified_++;
  core->notify_cv_.notify_one();
}

void Core::completionLoop() {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(notify_mu_);
      notify_cv_.wait(lock, [&] { return stop_ || notified_ != seen; });
      if (stop_)
        return;
      seen = notified_;
    }
    std::lock_guard<std::mutex> lock(a2a_mu_);
    reapLocked();
  }
}

void Core::reapLocked() {
  for (auto it = inflight_.begin(); it != inflight_.end();) {
    const auto& work = *it;
    int flag = 0;
    bls_status_t st = bls_test(a2a_, work->iter, &flag, nullptr);
    if (st == BLS_OK && !flag) {
      ++it;
      continue;
    }
    std::exception_ptr error;
    if (st != BLS_OK) {
      error = std::make_exception_ptr(
          std::runtime_error(c10::str("bls: ", work->what(), ": ", inBytes(bls_last_error()))));
    } else if (work->finish_fn) {
      try {
        work->finish_fn();
      } catch (...) {
        error = std::current_exception();
      }
    }
    work->finish_fn = nullptr;
    work->keep.clear();
    work->complete(error);
    it = inflight_.erase(it);
    a2a_cv_.notify_all();
  }
}

c10::intrusive_ptr<BlsWork> Core::newWork(c10d::OpType op, const std::string& what) {
  return c10::make_intrusive<BlsWork>(rank_, op, what, weak_from_this(), timeout_);
}

c10::intrusive_ptr<c10d::Work> Core::allToAllSingle(at::Tensor& output, at::Tensor& input,
                                                    const std::vector<int64_t>& output_splits,
                                                    const std::vector<int64_t>& input_splits) {
  checkCpuDense(input, "all_to_all_single", "input");
  checkCpuDense(output, "all_to_all_single", "output");
  TORCH_CHECK(input.scalar_type() == output.scalar_type(), "bls: all_to_all_single: input is ",
              input.scalar_type(), " but output is ", output.scalar_type());
  const int P = size_;
  auto in_rows = splitRows(input, input_splits, P, "input");
  auto out_rows = splitRows(output, output_splits, P, "output");
  const int64_t es = static_cast<int64_t>(input.element_size());
  const int64_t in_row = rowElems(input) * es, out_row = rowElems(output) * es;

  auto work = newWork(c10d::OpType::ALLTOALL_BASE, "all_to_all_single");
  // Blocks move straight between the tensors (zero copy) unless they alias each other or
  // are not contiguous.
  at::Tensor send = input.contiguous();
  if (send.is_alias_of(output))
    send = send.clone();
  at::Tensor recv = output.is_contiguous() ? output : at::empty_like(output, at::MemoryFormat::Contiguous);
  if (!recv.is_same(output))
    work->finish_fn = [output, recv]() mutable { output.copy_(recv); };
  work->keep = {send, recv};
  work->outputs = {output};

  std::unique_lock<std::mutex> lock(a2a_mu_);
  TORCH_CHECK(!down_, "bls: all_to_all_single on a process group that was shut down");
  size_t* sc = counts_.data();
  size_t* sd = sc + P;
  size_t* rc = sd + P;
  size_t* rd = rc + P;
  size_t soff = 0, roff = 0;
  for (int q = 0; q < P; q++) {
    sc[q] = static_cast<size_t>(in_rows[static_cast<size_t>(q)] * in_row);
    rc[q] = static_cast<size_t>(out_rows[static_cast<size_t>(q)] * out_row);
    sd[q] = soff;
    rd[q] = roff;
    soff += sc[q];
    roff += rc[q];
  }
  // The lag bound: call k is posted once call k-L-1 completed (and was reported).
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  while (static_cast<int>(inflight_.size()) > lag_) {
    if (a2a_cv_.wait_until(lock, deadline) == std::cv_status::timeout &&
        static_cast<int>(inflight_.size()) > lag_) {
      throw std::runtime_error(c10::str(
          "bls: all_to_all_single: with lag ", lag_, " call ", inflight_.front()->iter,
          " must complete first, and after ", static_cast<double>(timeout_.count()) / 1000.0,
          " s it still waits for peers ", pendingLocked(inflight_.front()->iter)));
    }
  }
  TORCH_CHECK(!down_, "bls: all_to_all_single on a process group that was shut down");
  bls_iter_t iter = -1;
  if (bls_post(a2a_, send.data_ptr(), sc, sd, recv.data_ptr(), rc, rd, &iter) != BLS_OK)
    throw std::runtime_error(c10::str("bls: all_to_all_single: ", inBytes(bls_last_error())));
  work->iter = iter;
  inflight_.push_back(work);
  return work;
}

std::string Core::pending(const BlsWork& work) {
  if (work.iter < 0)
    return "; it runs as a blocking MPI call, so a process of the group has not reached it "
           "(or one before it)";
  std::lock_guard<std::mutex> lock(a2a_mu_);
  if (down_)
    return "";
  return c10::str("; call ", work.iter, " still waits for peers ", pendingLocked(work.iter));
}

std::string Core::pendingLocked(bls_iter_t iter) {
  char why[512];
  if (bls_pending_peers(a2a_, iter, why, sizeof(why)) != BLS_OK)
    return c10::str("(unknown: ", bls_last_error(), ")");
  return why;
}

bls_stats_t Core::stats() {
  std::lock_guard<std::mutex> lock(a2a_mu_);
  bls_stats_t s{};
  if (!down_)
    bls_comm_stats(a2a_, &s);
  return s;
}

// ----------------------------------------------------------------------- worker collectives

c10::intrusive_ptr<c10d::Work> Core::enqueue(const c10::intrusive_ptr<BlsWork>& work,
                                             std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    TORCH_CHECK(!down_, "bls: ", work->what(), " on a process group that was shut down");
    queue_.emplace_back(work, std::move(fn));
  }
  queue_cv_.notify_one();
  return work;
}

void Core::workerLoop() {
  for (;;) {
    std::pair<c10::intrusive_ptr<BlsWork>, std::function<void()>> item;
    {
      std::unique_lock<std::mutex> lock(queue_mu_);
      queue_cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) {
        worker_done_ = true;
        queue_cv_.notify_all();
        return;
      }
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    std::exception_ptr error;
    try {
      item.second();
    } catch (...) {
      error = std::current_exception();
    }
    item.first->keep.clear();
    item.first->complete(error);
  }
}

c10::intrusive_ptr<c10d::Work> Core::broadcast(std::vector<at::Tensor>& tensors, int64_t root) {
  TORCH_CHECK(tensors.size() == 1, "bls: broadcast takes one tensor per process (got ",
              tensors.size(), ")");
  TORCH_CHECK(root >= 0 && root < size_, "bls: broadcast: root ", root, " is not a rank of ",
              size_);
  at::Tensor t = tensors[0];
  checkCpuDense(t, "broadcast", "the tensor");
  at::Tensor buf = t.contiguous();
  auto work = newWork(c10d::OpType::BROADCAST, "broadcast");
  work->keep = {buf};
  work->outputs = {t};
  MPI_Comm comm = coll_comm_;
  return enqueue(work, [t, buf, root, comm]() mutable {
    auto* p = static_cast<char*>(buf.data_ptr());
    for (int64_t off = 0, n = nbytes(buf); off < n; off += kChunkBytes) {
      int len = static_cast<int>(std::min(kChunkBytes, n - off));
      checkMpi(MPI_Bcast(p + off, len, MPI_BYTE, static_cast<int>(root), comm), "MPI_Bcast");
    }
    if (!buf.is_same(t))
      t.copy_(buf);
  });
}

c10::intrusive_ptr<c10d::Work> Core::allReduce(std::vector<at::Tensor>& tensors,
                                               const c10d::ReduceOp& op) {
  TORCH_CHECK(tensors.size() == 1, "bls: all_reduce takes one tensor per process (got ",
              tensors.size(), ")");
  at::Tensor t = tensors[0];
  checkCpuDense(t, "all_reduce", "the tensor");
  MPI_Datatype type = mpiType(t.scalar_type());
  TORCH_CHECK(type != MPI_DATATYPE_NULL, "bls: all_reduce: dtype ", t.scalar_type(),
              " is not supported (float32, float64, int8/16/32/64, uint8 are)");
  MPI_Op mop = mpiOp(op);
  TORCH_CHECK(mop != MPI_OP_NULL, "bls: all_reduce supports SUM, PRODUCT, MIN and MAX");
  at::Tensor buf = t.contiguous();
  auto work = newWork(c10d::OpType::ALLREDUCE, "all_reduce");
  work->keep = {buf};
  work->outputs = {t};
  MPI_Comm comm = coll_comm_;
  return enqueue(work, [t, buf, type, mop, comm]() mutable {
    const int64_t es = static_cast<int64_t>(buf.element_size()), step = kChunkBytes / es;
    auto* p = static_cast<char*>(buf.data_ptr());
    for (int64_t off = 0, n = buf.numel(); off < n; off += step) {
      int len = static_cast<int>(std::min(step, n - off));
      checkMpi(MPI_Allreduce(MPI_IN_PLACE, p + off * es, len, type, mop, comm), "MPI_Allreduce");
    }
    if (!buf.is_same(t))
      t.copy_(buf);
  });
}

c10::intrusive_ptr<c10d::Work> Core::allGather(std::vector<std::vector<at::Tensor>>& outputs,
                                               std::vector<at::Tensor>& inputs) {
  TORCH_CHECK(inputs.size() == 1 && outputs.size() == 1,
              "bls: all_gather takes one input tensor and one output list per process");
  TORCH_CHECK(static_cast<int>(outputs[0].size()) == size_, "bls: all_gather: the output list "
              "has ", outputs[0].size(), " tensors for a group of ", size_);
  at::Tensor in = inputs[0].contiguous();
  checkCpuDense(in, "all_gather", "input");
  for (const auto& o : outputs[0]) {
    checkCpuDense(o, "all_gather", "an output");
    TORCH_CHECK(o.scalar_type() == in.scalar_type() && o.numel() == in.numel(),
                "bls: all_gather: every output must match the input (", in.scalar_type(), ", ",
                in.numel(), " elements); one is ", o.scalar_type(), ", ", o.numel());
  }
  const int64_t bytes = nbytes(in);
  const int count = intCount(bytes, "all_gather");
  // Outputs that are consecutive views of one buffer (tensor.split) receive directly.
  const auto& outs = outputs[0];
  bool direct = true;
  for (int r = 0; r < size_ && direct; r++)
    direct = outs[static_cast<size_t>(r)].is_contiguous() &&
             static_cast<char*>(outs[static_cast<size_t>(r)].data_ptr()) ==
                 static_cast<char*>(outs[0].data_ptr()) + r * bytes;
  at::Tensor buf = direct ? at::Tensor()
                          : at::empty({static_cast<int64_t>(size_), in.numel()}, in.options());
  auto work = newWork(c10d::OpType::ALLGATHER, "all_gather");
  work->keep = {in};
  work->outputs = outs;
  MPI_Comm comm = coll_comm_;
  const int P = size_;
  return enqueue(work, [outs, in, buf, count, direct, comm, P]() mutable {
    void* dst = direct ? outs[0].data_ptr() : buf.data_ptr();
    checkMpi(MPI_Allgather(in.data_ptr(), count, MPI_BYTE, dst, count, MPI_BYTE, comm),
             "MPI_Allgather");
    if (!direct)
      for (int r = 0; r < P; r++)
        outs[static_cast<size_t>(r)].copy_(buf[r].view(outs[static_cast<size_t>(r)].sizes()));
  });
}

c10::intrusive_ptr<c10d::Work> Core::allGatherBase(at::Tensor& output, at::Tensor& input) {
  checkCpuDense(input, "all_gather_base", "input");
  checkCpuDense(output, "all_gather_base", "output");
  TORCH_CHECK(output.is_contiguous(), "bls: all_gather_base: the output must be contiguous");
  TORCH_CHECK(output.scalar_type() == input.scalar_type() &&
                  output.numel() == input.numel() * size_,
              "bls: all_gather_base: the output must hold ", size_, " x ", input.numel(), " ",
              input.scalar_type(), " elements (it holds ", output.numel(), " ",
              output.scalar_type(), ")");
  at::Tensor in = input.contiguous();
  const int count = intCount(nbytes(in), "all_gather_base");
  auto work = newWork(c10d::OpType::_ALLGATHER_BASE, "all_gather_base");
  work->keep = {in, output};
  work->outputs = {output};
  MPI_Comm comm = coll_comm_;
  return enqueue(work, [output, in, count, comm]() mutable {
    checkMpi(MPI_Allgather(in.data_ptr(), count, MPI_BYTE, output.data_ptr(), count, MPI_BYTE,
                           comm),
             "MPI_Allgather");
  });
}

c10::intrusive_ptr<c10d::Work> Core::gather(std::vector<std::vector<at::Tensor>>& outputs,
                                            std::vector<at::Tensor>& inputs, int64_t root) {
  TORCH_CHECK(root >= 0 && root < size_, "bls: gather: root ", root, " is not a rank of ",
              size_);
  TORCH_CHECK(inputs.size() == 1, "bls: gather takes one input tensor per process");
  at::Tensor in = inputs[0].contiguous();
  checkCpuDense(in, "gather", "input");
  std::vector<at::Tensor> outs;
  if (rank_ == root) {
    TORCH_CHECK(outputs.size() == 1 && static_cast<int>(outputs[0].size()) == size_,
                "bls: gather: the root needs a list of ", size_, " output tensors");
    outs = outputs[0];
    for (const auto& o : outs)
      TORCH_CHECK(o.scalar_type() == in.scalar_type() && o.numel() == in.numel(),
                  "bls: gather: every output must match the input (", in.scalar_type(), ", ",
                  in.numel(), " elements)");
  } else {
    TORCH_CHECK(outputs.empty() || (outputs.size() == 1 && outputs[0].empty()),
                "bls: gather: only the root (rank ", root, ") passes output tensors");
  }
  const int count = intCount(nbytes(in), "gather");
  at::Tensor buf = rank_ == root ? at::empty({static_cast<int64_t>(size_), in.numel()},
                                             in.options())
                                 : at::Tensor();
  auto work = newWork(c10d::OpType::GATHER, "gather");
  work->keep = {in};
  work->outputs = outs;
  MPI_Comm comm = coll_comm_;
  return enqueue(work, [outs, in, buf, count, root, comm]() mutable {
    checkMpi(MPI_Gather(in.data_ptr(), count, MPI_BYTE, buf.defined() ? buf.data_ptr() : nullptr,
                        count, MPI_BYTE, static_cast<int>(root), comm),
             "MPI_Gather");
    for (size_t r = 0; r < outs.size(); r++)
      outs[r].copy_(buf[static_cast<int64_t>(r)].view(outs[r].sizes()));
  });
}

c10::intrusive_ptr<c10d::Work> Core::scatter(std::vector<at::Tensor>& outputs,
                                             std::vector<std::vector<at::Tensor>>& inputs,
                                             int64_t root) {
  TORCH_CHECK(root >= 0 && root < size_, "bls: scatter: root ", root, " is not a rank of ",
              size_);
  TORCH_CHECK(outputs.size() == 1, "bls: scatter takes one output tensor per process");
  at::Tensor out = outputs[0];
  checkCpuDense(out, "scatter", "output");
  at::Tensor buf;
  if (rank_ == root) {
    TORCH_CHECK(inputs.size() == 1 && static_cast<int>(inputs[0].size()) == size_,
                "bls: scatter: the root needs a list of ", size_, " input tensors");
    buf = at::empty({static_cast<int64_t>(size_), out.numel()}, out.options());
    for (int r = 0; r < size_; r++) {
      const auto& i = inputs[0][static_cast<size_t>(r)];
      TORCH_CHECK(i.scalar_type() == out.scalar_type() && i.numel() == out.numel(),
                  "bls: scatter: every input must match the output (", out.scalar_type(), ", ",
                  out.numel(), " elements)");
      buf[r].copy_(i.reshape({-1}));
    }
  } else {
    TORCH_CHECK(inputs.empty() || (inputs.size() == 1 && inputs[0].empty()),
                "bls: scatter: only the root (rank ", root, ") passes input tensors");
  }
  const int count = intCount(nbytes(out), "scatter");
  at::Tensor recv = out.is_contiguous() ? out : at::empty_like(out, at::MemoryFormat::Contiguous);
  auto work = newWork(c10d::OpType::SCATTER, "scatter");
  work->outputs = {out};
  MPI_Comm comm = coll_comm_;
  return enqueue(work, [out, recv, buf, count, root, comm]() mutable {
    checkMpi(MPI_Scatter(buf.defined() ? buf.data_ptr() : nullptr, count, MPI_BYTE,
                         recv.data_ptr(), count, MPI_BYTE, static_cast<int>(root), comm),
             "MPI_Scatter");
    if (!recv.is_same(out))
      out.copy_(recv);
  });
}

c10::intrusive_ptr<c10d::Work> Core::barrier() {
  // Like gloo's barrier, it also waits for this group's earlier calls: the worker runs them
  // in order, and the all_to_all_single calls in flight now are waited for first.
  std::vector<c10::intrusive_ptr<BlsWork>> before;
  {
    std::lock_guard<std::mutex> lock(a2a_mu_);
    before.assign(inflight_.begin(), inflight_.end());
  }
  auto work = newWork(c10d::OpType::BARRIER, "barrier");
  MPI_Comm comm = coll_comm_;
  return enqueue(work, [before, comm]() {
    for (const auto& w : before)
      w->wait();
    checkMpi(MPI_Barrier(comm), "MPI_Barrier");
  });
}

// -------------------------------------------------------------------------------- shutdown

bool Core::shutdown() {
  std::lock_guard<std::mutex> guard(shutdown_mu_);
  if (down_ || !a2a_)
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
    fprintf(stderr, "bls: rank %d: a collective of the group was still blocked in MPI after %lld s "
            "at shutdown (a peer never joined it); leaving it and MPI unfinalized\n", rank_,
            static_cast<long long>(kShutdownGrace.count()));
  } else if (worker_thread_.joinable()) {
    worker_thread_.join();
  }
  auto gone = [](const std::string& what) {
    return std::make_exception_ptr(std::runtime_error(
        c10::str("bls: ", what, ": the process group was shut down before it completed")));
  };
  for (auto& item : queued)
    item.first->complete(gone(item.first->what()));
  std::list<c10::intrusive_ptr<BlsWork>> inflight;
  {
    std::lock_guard<std::mutex> lock(a2a_mu_);
    reapLocked();
    inflight.swap(inflight_);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
      bls_comm_destroy(a2a_);  // cancels what is in flight; the tensors are still held
      if (!stuck_) {
        MPI_Comm_free(&coll_comm_);
        MPI_Comm_free(&group_comm_);
      }
    }
    a2a_ = nullptr;
  }
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
