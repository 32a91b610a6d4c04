// The zstd NDJSON sink: ZstdFileWriter writing a delivery segment line by line (as PanelStore.deliver does),
// and one-shot Zstd.compress of the same bytes at levels 1 and 3.
//
// Gate metric: mallocCountTotal (deterministic). MB/s of uncompressed input and wallClock are for local runs;
// the file writer's figure includes the closing fsync, so it depends on the disk.

import Benchmark
import BenchmarkFixtures
import CDFSyncStorage
import Foundation

/// Records in the segment: about 11 MB of NDJSON (the engine's segments are up to 64 MiB).
let segmentRecords = 20_000

/// NDJSON bytes and the end offset of every line (newline excluded).
final class Segment: @unchecked Sendable {
    var bytes: [UInt8] = []
    var lineEnds: [Int] = []

    func load() throws {
        guard bytes.isEmpty else { return }
        bytes = try PanelFixture.ndjson(records: segmentRecords)
        lineEnds = bytes.indices.filter { bytes[$0] == UInt8(ascii: "\n") }
        BenchmarkSupport.describe("NDJSON segment: \(bytes.count) bytes, \(lineEnds.count) records")
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: BenchmarkSupport.metrics + [BenchmarkSupport.megabytesPerSecond, BenchmarkSupport.compressedPerMille],
        timeUnits: .milliseconds,
        warmupIterations: 1,
        maxDuration: .seconds(5),
        maxIterations: 100,
        // A few dozen allocations (zstd context, output buffer); one per line written would add 20,000.
        thresholds: BenchmarkSupport.thresholds(mallocAbsolute: 24)
    )

    let segment = Segment()
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("cdfsync-bench-sink-\(ProcessInfo.processInfo.processIdentifier)").path

    Benchmark(
        "ZstdFileWriter_NDJSON_20k_records_level3",
        configuration: .init(
            setup: {
                try segment.load()
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            },
            teardown: { try? FileManager.default.removeItem(atPath: directory) })
    ) { benchmark in
        let path = directory + "/changes.ndjson.zst.tmp"
        let newline: [UInt8] = [0x0A]
        let clock = BenchmarkSupport.Stopwatch()
        var compressed = 0
        for _ in benchmark.scaledIterations {
            let writer = try ZstdFileWriter(path: path, level: 3)
            try segment.bytes.withUnsafeBytes { raw in
                var start = 0
                for end in segment.lineEnds {
                    try writer.write(UnsafeRawBufferPointer(rebasing: raw[start..<end]))
                    try newline.withUnsafeBytes { try writer.write($0) }
                    start = end + 1
                }
            }
            try writer.finish()
            compressed = writer.bytesOut
        }
        clock.report(bytes: segment.bytes.count, to: benchmark)
        benchmark.measurement(BenchmarkSupport.compressedPerMille, compressed * 1000 / segment.bytes.count)
        unlink(path)
    }

    for level: Int32 in [1, 3] {
        Benchmark(
            "Zstd.compress_NDJSON_20k_records_level\(level)",
            configuration: .init(setup: { try segment.load() })
        ) { benchmark in
            let clock = BenchmarkSupport.Stopwatch()
            var compressed = 0
            for _ in benchmark.scaledIterations {
                let out = try Zstd.compress(segment.bytes, level: level)
                compressed = out.count
                blackHole(out)
            }
            clock.report(bytes: segment.bytes.count, to: benchmark)
            benchmark.measurement(BenchmarkSupport.compressedPerMille, compressed * 1000 / segment.bytes.count)
        }
    }
}
