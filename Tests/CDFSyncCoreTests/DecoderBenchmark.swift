import CDFSyncCore
import Foundation
import Testing

/// A synthetic change-feed body: `rows` rows of 8 columns resembling `table_changes` output.
func syntheticChangeFeedBody(rows: Int, layout: ResultStreamDecoder.Layout, escapeHeavy: Bool = false) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(rows * 190 + 256)
    if layout == .envelope {
        out += Array(#"{"statement_id":"01f0-bench","status":{"state":"SUCCEEDED"},"result":{"chunk_index":0,"row_offset":0,"row_count":\#(rows),"data_array":"#.utf8)
    }
    out.append(UInt8(ascii: "["))
    for r in 0..<rows {
        if r > 0 { out.append(UInt8(ascii: ",")) }
        let escaped = escapeHeavy || r % 50 == 0 ? #"O\"Brien \u00e9\n\t\\ \ud83d\ude00 line"# : "Participant Name \(r % 977)"
        let row = #"["\#(r)","\#(escaped)","person\#(r)@example.com","2024-11-08T15:20:17.922-08:00","\#(r % 3 == 0 ? "insert" : "update_postimage")","\#(1000 + r / 100)","2024-11-08T15:20:17.000Z",\#(r % 4 == 0 ? "null" : #""note with a few words in it""#)]"#
        out += Array(row.utf8)
    }
    out.append(UInt8(ascii: "]"))
    if layout == .envelope { out += Array(#","next_chunk_index":1}}"#.utf8) }
    return out
}

/// Decodes `body` in `pieceSize` pieces, touching every value's length; returns (rows, checksum).
@inline(never)
func decodeForBenchmark(_ body: [UInt8], layout: ResultStreamDecoder.Layout, pieceSize: Int) throws -> (Int, Int) {
    var decoder = ResultStreamDecoder(layout: layout, expectedColumnCount: 8)
    var checksum = 0
    try body.withUnsafeBytes { all in
        var start = 0
        while start < all.count {
            let end = min(start + pieceSize, all.count)
            try decoder.feed(UnsafeRawBufferPointer(rebasing: all[start..<end])) { row in
                checksum &+= Int(row.int64(5) ?? 0)
                for i in 0..<row.count { checksum &+= row.withValue(i) { $0.count } ?? 1 }
            }
            start = end
        }
    }
    _ = try decoder.finish()
    return (decoder.rowCount, checksum)
}

/// Micro-benchmark, not a test of speed: prints MB/s and never asserts on time.
///
/// Run: `CDFSYNC_BENCH=1 swift test -c release --filter DecoderBenchmark`
@Suite("DecoderBenchmark", .enabled(if: ProcessEnvironment.isSet("CDFSYNC_BENCH")))
struct DecoderBenchmark {
    @Test func throughput() throws {
        let rowCount = 400_000
        let cases: [(String, ResultStreamDecoder.Layout, Int, Bool)] = [
            ("bareArray, 64 KiB pieces", .bareArray, 64 * 1024, false),
            ("envelope, 64 KiB pieces", .envelope, 64 * 1024, false),
            ("bareArray, 16 KiB pieces", .bareArray, 16 * 1024, false),
            ("bareArray, 1 MiB pieces", .bareArray, 1024 * 1024, false),
            ("bareArray, escape-heavy, 64 KiB pieces", .bareArray, 64 * 1024, true),
        ]
        for (name, layout, pieceSize, escapes) in cases {
            let body = syntheticChangeFeedBody(rows: rowCount, layout: layout, escapeHeavy: escapes)
            var best = Double.infinity
            for _ in 0..<5 {
                let clock = ContinuousClock()
                var result = (0, 0)
                let elapsed = try clock.measure {
                    result = try decodeForBenchmark(body, layout: layout, pieceSize: pieceSize)
                }
                #expect(result.0 == rowCount)
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                best = min(best, seconds)
            }
            let mb = Double(body.count) / 1e6
            print("DecoderBenchmark \(name): \(Int(mb)) MB, \(rowCount) rows, best of 5: \(Int(mb / best)) MB/s, \(Int(Double(rowCount) / best / 1000)) k rows/s")
        }
    }
}

enum ProcessEnvironment {
    static func isSet(_ name: String) -> Bool {
        ProcessInfo.processInfo.environment[name] != nil
    }
}
