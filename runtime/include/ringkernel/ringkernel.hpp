#pragma once
//! \file
//! Umbrella header: everything a libringkernel user needs. Include it from a .cu file to get the CUDA
//! backend for the handlers you spawn there; from a .cpp file you get the CPU backend only.

#include <ringkernel/device/actor_loop.cuh>
#include <ringkernel/device/context.cuh>
#include <ringkernel/device/envelope.cuh>
#include <ringkernel/device/handler.cuh>
#include <ringkernel/device/hlc.cuh>
#include <ringkernel/device/mailbox.cuh>
#include <ringkernel/device/message.cuh>
#include <ringkernel/device/refusal_notice.cuh>
#include <ringkernel/device/status.cuh>
#include <ringkernel/host/error.hpp>
#include <ringkernel/host/options.hpp>
#include <ringkernel/host/runtime.hpp>
#include <ringkernel/host/stats.hpp>
