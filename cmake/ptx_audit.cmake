# The PTX audit: GPU properties checked without a GPU (docs/architecture.md, "GPU properties we check
# without a GPU"). Compiles tests/ptx/ptx_audit.cu for sm_90 to PTX and (ptxas -v) to a cubin, and fails if
#   - a checked kernel has a stack frame or spills (a local-memory array or copy reloaded every poll),
#   - it uses more registers than its budget,
#   - a byte store to global or generic memory remains (st.u8 outside shared memory): the checked kernels
#     keep no 8-bit fields in memory, so any byte store is a byte-wise copy of a slot coming back,
#   - the idle poll (rk_ptx_audit_idle_poll: what workers call between messages) loads anything with
#     system scope (ld.*.sys: mapped memory, across PCIe, on every idle iteration of every worker), or
#     the gateway more than its 14: the acquire loads of the seq words of the mapped rings it polls or
#     claims (ingress, wake requests, egress, the cluster outbound ring, audit), counted per inlined copy;
#     ring heads it owns are kept in device memory.
# Arguments: -DNVCC=<nvcc> -DSOURCE=<ptx_audit.cu> -DINCLUDES=<dir|dir|...> -DWORK_DIR=<dir>
cmake_minimum_required(VERSION 3.25)
file(MAKE_DIRECTORY "${WORK_DIR}")
set(flags -std=c++20 -arch=sm_90 -O3 --expt-relaxed-constexpr)
string(REPLACE "|" ";" INCLUDES "${INCLUDES}")
foreach(dir IN LISTS INCLUDES)
  list(APPEND flags "-I${dir}")
endforeach()

execute_process(COMMAND "${NVCC}" ${flags} -cubin -Xptxas -v "${SOURCE}" -o "${WORK_DIR}/audit.cubin"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "ptx audit: nvcc -cubin failed:\n${err}")
endif()
execute_process(COMMAND "${NVCC}" ${flags} -ptx "${SOURCE}" -o "${WORK_DIR}/audit.ptx"
                RESULT_VARIABLE rc ERROR_VARIABLE err2)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "ptx audit: nvcc -ptx failed:\n${err2}")
endif()

# kernel (a substring of its mangled name) | register budget | st.u8 budget | .sys load budget (- : any)
set(kernels
  "_ZN2rk12actor_kernelI15ptx_audit_stage|64|0|-"
  "scheduled_actor_kernelI15ptx_audit_stage|64|0|-"
  "rk_ptx_audit_gateway|84|0|14"
  "rk_ptx_audit_emit|48|0|-"
  "rk_ptx_audit_idle_poll|64|0|0")

# ptxas -v: "Function properties for NAME" / "N bytes stack frame, S bytes spill stores, L bytes spill
# loads" / "Used R registers".
string(REPLACE "\n" ";" lines "${err}")
set(current "")
set(failures "")
foreach(line IN LISTS lines)
  if(line MATCHES "Function properties for ([A-Za-z0-9_]+)")
    set(current "${CMAKE_MATCH_1}")
  elseif(current AND line MATCHES "([0-9]+) bytes stack frame, ([0-9]+) bytes spill stores, ([0-9]+) bytes spill loads")
    set(stack_${current} ${CMAKE_MATCH_1})
    math(EXPR spill_${current} "${CMAKE_MATCH_2} + ${CMAKE_MATCH_3}")
  elseif(current AND line MATCHES "Used ([0-9]+) registers")
    set(regs_${current} ${CMAKE_MATCH_1})
  endif()
endforeach()

# PTX: count byte stores per entry.
file(STRINGS "${WORK_DIR}/audit.ptx" ptx)
set(entry "")
foreach(line IN LISTS ptx)
  if(line MATCHES "^\\.visible \\.entry ([A-Za-z0-9_]+)\\(")
    set(entry "${CMAKE_MATCH_1}")
    set(bytes_${entry} 0)
    set(sys_${entry} 0)
  elseif(entry AND line MATCHES "^[ \t]+st\\.[a-z.]*[ub]8[ \t]" AND NOT line MATCHES "st\\.shared")
    math(EXPR bytes_${entry} "${bytes_${entry}} + 1")
  elseif(entry AND line MATCHES "^[ \t]+ld\\.[a-z.]*sys[. \t]")
    math(EXPR sys_${entry} "${sys_${entry}} + 1")
  endif()
endforeach()

set(report "")
foreach(spec IN LISTS kernels)
  string(REPLACE "|" ";" spec "${spec}")
  list(GET spec 0 pattern)
  list(GET spec 1 register_budget)
  list(GET spec 2 byte_store_budget)
  list(GET spec 3 sys_load_budget)
  set(found "")
  foreach(line IN LISTS lines)
    if(line MATCHES "Function properties for ([A-Za-z0-9_]*${pattern}[A-Za-z0-9_]*)")
      set(found "${CMAKE_MATCH_1}")
    endif()
  endforeach()
  if(NOT found)
    list(APPEND failures "${pattern}: not found in the ptxas report")
    continue()
  endif()
  set(stack ${stack_${found}})
  set(spill ${spill_${found}})
  set(regs ${regs_${found}})
  set(stores ${bytes_${found}})
  set(sys_loads ${sys_${found}})
  string(APPEND report "  ${pattern}: ${regs} registers (budget ${register_budget}), stack ${stack} B, spills ${spill} B, st.u8 ${stores} (budget ${byte_store_budget}), ld .sys ${sys_loads} (budget ${sys_load_budget})\n")
  if(NOT sys_load_budget STREQUAL "-" AND sys_loads GREATER sys_load_budget)
    list(APPEND failures "${pattern}: ${sys_loads} system-scope loads (ld.*.sys), budget ${sys_load_budget}: an idle poll reads mapped memory across PCIe")
  endif()
  if(NOT stack EQUAL 0)
    list(APPEND failures "${pattern}: ${stack}-byte stack frame (local memory)")
  endif()
  if(NOT spill EQUAL 0)
    list(APPEND failures "${pattern}: ${spill} bytes of register spills")
  endif()
  if(regs GREATER register_budget)
    list(APPEND failures "${pattern}: ${regs} registers, budget ${register_budget}")
  endif()
  if(stores GREATER byte_store_budget)
    list(APPEND failures "${pattern}: ${stores} byte stores (st.u8), budget ${byte_store_budget}: a byte-wise copy is back")
  endif()
endforeach()
message(STATUS "ptx audit (sm_90):\n${report}")
if(failures)
  string(REPLACE ";" "\n  " failures "${failures}")
  message(FATAL_ERROR "ptx audit failed:\n  ${failures}")
endif()
