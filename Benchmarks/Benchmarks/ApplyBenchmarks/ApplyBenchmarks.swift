// PanelStore.apply: one sorted 50k-row batch per transaction, as the engine's writer thread submits them.
//
// Gate metric: mallocCountTotal (deterministic for a fresh environment). k rows/s and wallClock are for local
// runs: they include the commit's fsync (the engine opens the store durable), so they depend on the disk.

import Benchmark
import BenchmarkFixtures
import CDFSyncStorage
import Foundation

let batchSize = 50_000
let scope = "main.bench.participants"
let pipeline = "bench"

/// A fresh, empty directory under the system temporary directory.
func makeTemporaryDirectory(_ tag: String) throws -> String {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("cdfsync-bench-\(tag)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)")
        .path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func removeDirectory(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: BenchmarkSupport.metrics + [BenchmarkSupport.kiloRowsPerSecond],
        timeUnits: .milliseconds,
        warmupIterations: 1,
        maxDuration: .seconds(5),
        maxIterations: 30,
        // Inserts and updates allocate about two per row (~100,000 a batch): 1% catches one more allocation per
        // row (+50,000) with room for LMDB's page-count jitter.
        thresholds: BenchmarkSupport.thresholds(mallocRelative: 1.0)
    )

    // 50k new keys, already in key order (zero-padded ids), built once.
    var newKeys: [PanelStore.Change] = []
    let checkpoint = PanelStore.Checkpoint(tableVersion: 1)

    // Inserting: every iteration opens a fresh environment (outside the measured region), applies the batch
    // (allocating participant ids, writing records, identity index, per-key versions, outbox and the
    // checkpoint in one transaction), and removes the environment afterwards.
    // durable: what the engine opens (one fsync per commit); nosync: the same work without the fsync, to
    // tell CPU from disk.
    for durable in [true, false] {
        Benchmark(
            "Apply_50k_new_keys_fresh_store\(durable ? "" : "_nosync")",
            configuration: .init(
                setup: {
                newKeys = try PanelFixture.changes(count: batchSize)
                let bytes = newKeys.reduce(0) { $0 + $1.record.count + $1.externalID.utf8.count }
                BenchmarkSupport.describe("apply batch: \(newKeys.count) changes, \(bytes) bytes of keys and records")
            },
                teardown: { newKeys = [] })
        ) { benchmark in
            // One fresh store per scaled iteration, opened before the measured region (start/stop pair once per run).
            var directories: [String] = []
            var stores: [PanelStore] = []
            defer { stores = []; directories.forEach(removeDirectory) }
            for _ in benchmark.scaledIterations {
                let directory = try makeTemporaryDirectory("apply-new")
                directories.append(directory)
                stores.append(try PanelStore(directory: directory, durable: durable))
            }
            let batch = newKeys
            benchmark.startMeasurement()
            let clock = BenchmarkSupport.Stopwatch()
            for i in benchmark.scaledIterations {
                let outcome = try stores[i].apply(batch, scope: scope, pipeline: pipeline, checkpoint: checkpoint)
                precondition(outcome.inserted == batchSize, "expected \(batchSize) inserts, got \(outcome)")
                blackHole(outcome)
            }
            clock.report(rows: batch.count, to: benchmark)
            benchmark.stopMeasurement()
        }
    }

    // Re-applying a batch that is already stored: every row is probed, hashed and found unchanged (no record,
    // no outbox entry); the checkpoint is written again.
    var unchangedStore: PanelStore?
    var unchangedDirectory = ""
    Benchmark(
        "Apply_50k_unchanged_keys",
        configuration: .init(
            // Only a few dozen allocations per batch: an absolute tolerance (one per row would add 50,000).
            thresholds: BenchmarkSupport.thresholds(mallocAbsolute: 24),
            setup: {
                newKeys = try PanelFixture.changes(count: batchSize)
                unchangedDirectory = try makeTemporaryDirectory("apply-unchanged")
                unchangedStore = try PanelStore(directory: unchangedDirectory)
                let first = try unchangedStore!.apply(newKeys, scope: scope, pipeline: pipeline, checkpoint: checkpoint)
                precondition(first.inserted == batchSize)
            },
            teardown: {
                unchangedStore = nil
                removeDirectory(unchangedDirectory)
                newKeys = []
            })
    ) { benchmark in
        let store = unchangedStore!
        let batch = newKeys
        let clock = BenchmarkSupport.Stopwatch()
        for _ in benchmark.scaledIterations {
            let outcome = try store.apply(batch, scope: scope, pipeline: pipeline, checkpoint: checkpoint)
            precondition(outcome.unchanged == batchSize, "expected \(batchSize) unchanged, got \(outcome)")
            blackHole(outcome)
        }
        clock.report(rows: batch.count, to: benchmark)
    }

    // Updating: every key exists with other content, so each row is probed, hashed, found different and
    // rewritten (record, version, `update` outbox entry). Iterations alternate between two contents (seeds 42
    // and 43) with an increasing commit version, so every apply updates every row of the same store.
    final class UpdateState: @unchecked Sendable {
        var store: PanelStore?
        var directory = ""
        var contents: [[PanelStore.Change]] = []
        var round = 0
    }
    let update = UpdateState()
    Benchmark(
        "Apply_50k_updated_keys",
        configuration: .init(
            // A few dozen allocations per batch, and LMDB's page splits move them by one now and then (53 / 54):
            // 1 % of that is less than one allocation, so an absolute tolerance (one per row would add 50,000).
            thresholds: BenchmarkSupport.thresholds(mallocAbsolute: 24),
            setup: {
                update.contents = [
                    try PanelFixture.changes(count: batchSize, seed: 42),
                    try PanelFixture.changes(count: batchSize, seed: 43),
                ]
                update.directory = try makeTemporaryDirectory("apply-update")
                update.store = try PanelStore(directory: update.directory)
                let first = try update.store!.apply(
                    update.contents[0], scope: scope, pipeline: pipeline, checkpoint: checkpoint)
                precondition(first.inserted == batchSize)
                update.round = 0
            },
            teardown: {
                update.store = nil
                removeDirectory(update.directory)
                update.contents = []
            })
    ) { benchmark in
        let store = update.store!
        var batches: [[PanelStore.Change]] = []
        for _ in benchmark.scaledIterations {
            update.round += 1
            var batch = update.contents[update.round % 2]
            let version = Int64(1 + update.round)
            for j in batch.indices { batch[j].commitVersion = version }
            batches.append(batch)
        }
        let next = PanelStore.Checkpoint(tableVersion: Int64(1 + update.round))
        benchmark.startMeasurement()
        let clock = BenchmarkSupport.Stopwatch()
        for batch in batches {
            let outcome = try store.apply(batch, scope: scope, pipeline: pipeline, checkpoint: next)
            precondition(outcome.updated == batchSize, "expected \(batchSize) updates, got \(outcome)")
            blackHole(outcome)
        }
        clock.report(rows: batchSize * batches.count, to: benchmark)
        benchmark.stopMeasurement()
    }
}
