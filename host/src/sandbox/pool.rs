//! The engine's configuration: epoch interruption, and the pooling allocator when the machine
//! can reserve its address space (instances then come from preallocated slots, which makes a
//! node run's instantiation several times cheaper), otherwise on-demand allocation.

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How many node runs may hold an instance at once; more wait for a free slot. The pool is
/// sized for it when the engine is built, and its setup and teardown cost grows with it (one
/// guard page `mprotect`ed per async stack, the slots' index and the unmapping at exit): a
/// server's 1,024 slots cost a one-shot `airlock run` more CPU than its node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots(u32);

impl Slots {
    /// A server's: 1,000 runs in flight, each holding one instance while its node runs.
    pub const SERVER: Slots = Slots(1024);

    /// Room for `node_runs` node runs at once (at least one, at most a server's).
    pub fn new(node_runs: usize) -> Slots {
        let capped = node_runs.clamp(1, Slots::SERVER.0 as usize);
        Slots(u32::try_from(capped).unwrap_or(Slots::SERVER.0))
    }

    pub(super) fn count(self) -> u32 {
        self.0
    }
}

/// Per node run: core instances are only counted (not pooled), so this is generous. A Rust or C
/// component instantiates 3–4 core modules (its module and wit-component's shims), a
/// componentize-js one 4, a componentize-py one 14 (libc, libpython and its runtime linked as
/// dynamic libraries). With few slots (a one-shot run has one) an average would not do:
/// every node run at once may be Python.
const CORE_INSTANCES_PER_RUN: u32 = 32;
/// Tables and memories are pooled (address space reserved per slot). Each of the components
/// above defines at most 2 tables and 1 memory.
const TABLES_PER_RUN: u32 = 8;
const MEMORIES_PER_RUN: u32 = 2;
/// Freed slots are decommitted (madvise) this many at a time: each madvise flushes TLBs
/// across cores, which showed up as ~10% of CPU at high run rates. Batching took one-webhook
/// runs/s from ~4,500 to ~6,000 here; keeping slots resident instead (memset) gained no more
/// and cost ~30 MiB with 1,000 runs in flight.
const DECOMMIT_BATCH: usize = 32;
/// Where the kernel can say which pages a node run dirtied (PAGEMAP_SCAN, Linux 6.7+), a freed
/// slot copies just those back from the component's memory image, up to this much, and they
/// stay resident: the next run of that component takes no page faults there, and the slot needs
/// no madvise. Measured side by side: Python node runs 3.1–4.0 → 1.7–2.4 ms, JavaScript
/// 1.4–1.6 → 0.8–0.95 ms, one-webhook CPU per run 423 → 338 µs, RSS with 1,000 runs in flight
/// unchanged (the pages were resident during the runs anyway). Without the scan, keeping memory
/// resident would mean clearing all of it on every free, so it is left off. It is also left off
/// where swap is on: the scan finds dirty pages that are present, so a dirty page swapped out
/// would keep a node run's data for the next run of that slot (wasmtime 48). The cost: after a
/// burst, each used slot keeps the pages its last run dirtied until it is used again.
const MEMORY_KEEP_RESIDENT: usize = 64 << 20;
const TABLE_KEEP_RESIDENT: usize = 1 << 20;

/// Builds the engine, pooled (`slots` instances) if possible. The memory pool reserves, without
/// committing, 4 GiB of address space per slot (so bounds checks can be elided); each node
/// run's own memory limit is enforced by its store, so one engine serves any per-node limit.
pub(super) fn new_engine(slots: Slots) -> wasmtime::Result<Engine> {
    let runs = slots.count();
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(runs)
        .total_core_instances(runs * CORE_INSTANCES_PER_RUN)
        .total_tables(runs * TABLES_PER_RUN)
        .total_memories(runs * MEMORIES_PER_RUN)
        // A component that needs more than one node run's share is refused when it is loaded
        // (naming the limit), not when a run fails to instantiate it.
        .max_core_instances_per_component(CORE_INSTANCES_PER_RUN)
        .max_tables_per_component(TABLES_PER_RUN)
        .max_memories_per_component(MEMORIES_PER_RUN)
        .total_stacks(runs)
        // Larger than the default 1 MiB for components with many core instances (Python).
        .max_component_instance_size(4 << 20)
        .decommit_batch_size(DECOMMIT_BATCH);
    if PoolingAllocationConfig::is_pagemap_scan_available() && swap_is_off() {
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
            .table_keep_resident(TABLE_KEEP_RESIDENT);
    }
    let mut config = base_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    match Engine::new(&config) {
        Ok(engine) => {
            tracing::debug!(slots = runs, "pooling allocator enabled");
            Ok(engine)
        }
        Err(error) => {
            tracing::info!(
                error = %format!("{error:#}"),
                "the pooling allocator is not available here; allocating instances on demand"
            );
            Engine::new(&base_config())
        }
    }
}

/// No swap area is active (checked once, at start). Unreadable counts as on.
fn swap_is_off() -> bool {
    std::fs::read_to_string("/proc/swaps")
        .is_ok_and(|swaps| swaps.lines().skip(1).all(str::is_empty))
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config
}

#[cfg(test)]
mod tests {
    use super::Slots;
    use crate::sandbox::{Sandbox, SandboxError};

    /// A component instantiating a module that defines one memory `instances` times.
    fn component_with_memories(instances: usize) -> Vec<u8> {
        let instantiate = "(core instance (instantiate $m))".repeat(instances);
        wat::parse_str(format!(
            "(component (core module $m (memory 1)) {instantiate})"
        ))
        .unwrap()
    }

    #[test]
    fn a_component_needing_more_than_one_node_runs_share_is_refused_at_load() {
        let cache = tempfile::tempdir().unwrap();
        let sandbox = Sandbox::new(cache.path(), Slots::new(4)).unwrap();
        match sandbox.load("big.wasm", &component_with_memories(3)) {
            Err(SandboxError::NotAComponent { reason, .. }) => assert!(
                reason
                    .contains("3 Wasm linear memories, which exceeds the configured maximum of 2"),
                "{reason}"
            ),
            other => panic!("{:?}", other.err()),
        }
        // Within the share, it is refused only for not being an action node.
        let fits = sandbox.load("fits.wasm", &component_with_memories(2));
        assert!(
            matches!(fits, Err(SandboxError::WrongWorld { .. })),
            "{:?}",
            fits.err()
        );
    }

    #[test]
    fn slots_are_at_least_one_and_at_most_a_servers() {
        assert_eq!(Slots::new(0).count(), 1);
        assert_eq!(Slots::new(6).count(), 6);
        assert_eq!(Slots::new(1_000_000), Slots::SERVER);
    }
}
