// What the PTX audit (cmake/ptx_audit.cmake, ctest `ptx.audit`) compiles for sm_90: the dedicated and the
// scheduled actor kernel of a representative handler (a pipeline stage: K2K send of the payload it got,
// deferring when the next mailbox is full), the gateway loop, and the audit emitter. Not linked into
// anything.
#include <ringkernel/device/actor_loop.cuh>
#include <ringkernel/device/gateway.cuh>
#include <ringkernel/device/scheduled_loop.cuh>

struct ptx_audit_stage {
  struct state {
    rk::actor_index next = 0;
    std::uint64_t forwarded = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (ctx.send(s.next, m.type(), m.payload(), {.correlation_id = m.correlation_id()}) ==
        rk::status::queue_full) {
      ctx.defer();
      return;
    }
    ++s.forwarded;
  }
};

template __global__ void rk::actor_kernel<ptx_audit_stage>(rk::detail::actor_kernel_params);
template __global__ void rk::scheduled_actor_kernel<ptx_audit_stage>(rk::detail::actor_kernel_params);

__global__ void rk_ptx_audit_gateway(rk::detail::system_view sys, std::uint32_t worker) {
  rk::detail::device_gateway_loop(sys, worker);
}

//! What a worker does on every idle poll, from the same functions the loops call between messages: the
//! control words, the quiescence report, the next step of an actor with an empty mailbox (dedicated), the
//! run queue (scheduled). The audit allows no system-scope (.sys, mapped memory over PCIe) load here.
__global__ void rk_ptx_audit_idle_poll(rk::detail::actor_kernel_params p, std::uint32_t* out) {
  using namespace rk::detail;
  const system_view& sys = p.sys;
  worker_status& status_word = sys.workers[p.first_worker + blockIdx.x];
  std::uint32_t seen = out[0];
  std::uint32_t result = terminate_requested(sys) ? 1u : 0u;
  note_quiescent(sys, status_word, seen);
  result += pause_requested(sys) ? 2u : 0u;
  result += static_cast<std::uint32_t>(next_step(sys, p.worker_actors[blockIdx.x]).kind);
  rk::actor_index ready = 0;
  result += take_ready(sys, p.kind, ready) ? ready : 0u;
  out[1 + blockIdx.x] = result + seen;
}

__global__ void rk_ptx_audit_emit(rk::audit_channel channel, rk::audit_record record) {
  (void)rk::emit_audit(channel, record);
}
