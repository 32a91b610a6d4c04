// ResultStreamDecoder over a realistic change-feed chunk: 16 participant columns plus `_change_type`,
// `_commit_version` and `_commit_timestamp`, every value a JSON string or null.
//
// Gate metric: mallocCountTotal (deterministic). MB/s (custom metric) and wallClock are for local runs.

import Benchmark
import BenchmarkFixtures
import CDFSyncCore
import CDFSyncStorage

/// Rows in one chunk: about 7 MB of JSON, the size of a typical EXTERNAL_LINKS chunk's share of a large result.
let rowsPerChunk = 20_000

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: BenchmarkSupport.metrics + [BenchmarkSupport.megabytesPerSecond],
        timeUnits: .milliseconds,
        warmupIterations: 2,
        maxDuration: .seconds(3),
        maxIterations: 200,
        // A handful of allocations per body (decoder scratch, metadata): a per-row allocation would add 20,000.
        thresholds: BenchmarkSupport.thresholds(mallocAbsolute: 24)
    )

    let bare = ChangeFeedFixture.bareArray(rows: rowsPerChunk)
    let envelope = ChangeFeedFixture.envelope(rows: rowsPerChunk)
    let columns = ChangeFeedFixture.columns.count
    BenchmarkSupport.describe("bareArray body: \(bare.count) bytes, envelope body: \(envelope.count) bytes, \(rowsPerChunk) rows")

    // The whole body in one feed: the decoder's own speed.
    Benchmark("Decode_bareArray_20k_rows") { benchmark in
        let clock = BenchmarkSupport.Stopwatch()
        for _ in benchmark.scaledIterations {
            var decoder = ResultStreamDecoder(layout: .bareArray, expectedColumnCount: columns)
            var valueBytes = 0
            try bare.withUnsafeBytes { raw in
                try decoder.feed(raw) { row in
                    // Touch one value per row so the row cannot be optimised away.
                    valueBytes &+= row.withValue(0) { $0.count } ?? 0
                }
            }
            blackHole(try decoder.finish())
            precondition(decoder.rowCount == rowsPerChunk)
            blackHole(valueBytes)
        }
        clock.report(bytes: bare.count, to: benchmark)
    }

    Benchmark("Decode_envelope_20k_rows") { benchmark in
        let clock = BenchmarkSupport.Stopwatch()
        for _ in benchmark.scaledIterations {
            var decoder = ResultStreamDecoder(layout: .envelope, expectedColumnCount: columns)
            var valueBytes = 0
            try envelope.withUnsafeBytes { raw in
                try decoder.feed(raw) { row in
                    valueBytes &+= row.withValue(0) { $0.count } ?? 0
                }
            }
            blackHole(try decoder.finish())
            precondition(decoder.rowCount == rowsPerChunk)
            blackHole(valueBytes)
        }
        clock.report(bytes: envelope.count, to: benchmark)
    }

    // The body in 16 KiB pieces, as libcurl hands them over (CURL_MAX_WRITE_SIZE): rows and values straddle
    // piece boundaries.
    Benchmark("Decode_bareArray_20k_rows_16KiB_pieces") { benchmark in
        let clock = BenchmarkSupport.Stopwatch()
        for _ in benchmark.scaledIterations {
            var decoder = ResultStreamDecoder(layout: .bareArray, expectedColumnCount: columns)
            var valueBytes = 0
            try bare.withUnsafeBytes { raw in
                var start = 0
                while start < raw.count {
                    let end = min(start + 16_384, raw.count)
                    try decoder.feed(UnsafeRawBufferPointer(rebasing: raw[start..<end])) { row in
                        valueBytes &+= row.withValue(0) { $0.count } ?? 0
                    }
                    start = end
                }
            }
            blackHole(try decoder.finish())
            precondition(decoder.rowCount == rowsPerChunk)
            blackHole(valueBytes)
        }
        clock.report(bytes: bare.count, to: benchmark)
    }

    // Escaped text (quotes, \u escapes, a surrogate pair, control characters) in every row, and every value's length
    // read: the unescaping path in every row.
    let escapeHeavy = EscapeHeavyFixture.bareArray(rows: rowsPerChunk)
    BenchmarkSupport.describe("escape-heavy body: \(escapeHeavy.count) bytes, \(rowsPerChunk) rows")
    Benchmark("Decode_escape_heavy_20k_rows") { benchmark in
        let clock = BenchmarkSupport.Stopwatch()
        for _ in benchmark.scaledIterations {
            var decoder = ResultStreamDecoder(layout: .bareArray, expectedColumnCount: EscapeHeavyFixture.columnCount)
            var valueBytes = 0
            try escapeHeavy.withUnsafeBytes { raw in
                try decoder.feed(raw) { row in
                    for i in 0..<row.count { valueBytes &+= row.withValue(i) { $0.count } ?? 1 }
                }
            }
            blackHole(try decoder.finish())
            precondition(decoder.rowCount == rowsPerChunk)
            blackHole(valueBytes)
        }
        clock.report(bytes: escapeHeavy.count, to: benchmark)
    }

    // Decode plus what the engine does per row before apply: key String, version, compact JSON record.
    Benchmark(
        "Decode_and_build_records_20k_rows",
        // One allocation per row (the record's bytes) is expected; a second one per row would add 100%.
        configuration: .init(thresholds: BenchmarkSupport.thresholds(mallocRelative: 1.0))
    ) { benchmark in
        let clock = BenchmarkSupport.Stopwatch()
        for _ in benchmark.scaledIterations {
            var decoder = ResultStreamDecoder(layout: .bareArray, expectedColumnCount: columns)
            var builder = RecordBuilder()
            var changes: [PanelStore.Change] = []
            changes.reserveCapacity(rowsPerChunk)
            try bare.withUnsafeBytes { raw in
                try decoder.feed(raw) { row in
                    if let change = builder.change(row) { changes.append(change) }
                }
            }
            blackHole(try decoder.finish())
            precondition(changes.count == rowsPerChunk)
            blackHole(changes)
        }
        clock.report(bytes: bare.count, to: benchmark)
    }
}
