import Foundation
import Testing

import CDFSyncCore
@testable import CDFSyncStorage

/// The flat `ChangeBatch` the engine hands its writer must behave exactly like the `[Change]` it replaces.
@Suite struct ChangeBatchTests {
    /// Seeded rows with repeated keys, out-of-order versions, emails and phones shared between keys, and some
    /// records large enough to be stored compressed.
    static func changes(seed: UInt64, count: Int) -> [PanelStore.Change] {
        var rng = SplitMix(seed)
        return (0..<count).map { i in
            let k = Int(rng.next() % 400)
            let big = rng.next() % 10 == 0
            let name = big ? String(repeating: "long name \(k) ", count: 60) : "name \(k) \(rng.next() % 3)"
            let email: String? = rng.next() % 3 == 0 ? "p\(rng.next() % 300)@example.com" : nil
            let phone: String? = rng.next() % 4 == 0 ? "+4420791\(rng.next() % 200 + 10000)" : nil
            return PanelStore.Change(
                externalID: "ext-\(k)", commitVersion: Int64(rng.next() % 5 + UInt64(i / 500)),
                record: record(name, k), email: email, phone: phone)
        }
    }

    @Test(arguments: [1 as UInt64, 2, 3])
    func batchAppliesExactlyLikeTheEquivalentChanges(seed: UInt64) throws {
        try withTemporaryDirectory { dir in
            let a = try PanelStore(directory: dir + "/a", durable: false)
            let b = try PanelStore(directory: dir + "/b", durable: false)
            let compressor = try ZstdCompressor(level: 3)
            let all = Self.changes(seed: seed, count: 2_000)
            for (n, slice) in stride(from: 0, to: all.count, by: 500).map({ all[$0..<min($0 + 500, all.count)] }).enumerated() {
                let checkpoint = PanelStore.Checkpoint(tableVersion: Int64(n))
                let expected = try a.apply(Array(slice), scope: "s", pipeline: "p", checkpoint: checkpoint)
                // Built row by row, with a failed chunk's rows appended and then dropped, and records precompressed.
                var batch = PanelStore.ChangeBatch(reservingRows: 16)
                for (i, c) in slice.enumerated() {
                    batch.append(c)
                    if i == 250 {
                        let mark = batch.count
                        for junk in Self.changes(seed: seed + 100, count: 40) { batch.append(junk) }
                        batch.truncate(to: mark)
                    }
                }
                try batch.prepare(compressor: compressor, threshold: b.recordCompressionThreshold)
                #expect(batch.count == slice.count)
                let got = try b.apply(batch, scope: "s", pipeline: "p", checkpoint: checkpoint)
                #expect(got == expected)
            }
            for k in 0..<400 {
                #expect(try a.record(externalID: "ext-\(k)", scope: "s") == b.record(externalID: "ext-\(k)", scope: "s"))
            }
            #expect(try a.conflicts(limit: 10_000) == b.conflicts(limit: 10_000))
            #expect(try a.checkpoint(pipeline: "p")?.tableVersion == b.checkpoint(pipeline: "p")?.tableVersion)
            // The delivered change lines are the same, in the same order.
            _ = try a.deliver(to: dir + "/out-a")
            _ = try b.deliver(to: dir + "/out-b")
            let linesA = try deliveredLines(dir + "/out-a", segmentFiles(dir + "/out-a"))
            let linesB = try deliveredLines(dir + "/out-b", segmentFiles(dir + "/out-b"))
            #expect(!linesA.isEmpty)
            #expect(linesA == linesB)
        }
    }

    @Test func rowsReadBackAsTheyWereAppended() {
        let all = Self.changes(seed: 9, count: 300)
        var batch = PanelStore.ChangeBatch()
        for c in all { batch.append(c) }
        #expect(batch.count == all.count)
        for (i, c) in all.enumerated() {
            let row = batch[i]
            #expect(row.externalID == c.externalID)
            #expect(row.commitVersion == c.commitVersion)
            #expect(row.record == c.record)
            #expect(row.email == c.email)
            #expect(row.phone == c.phone)
            #expect(row.contentHash == StableHash.hash(c.record))
        }
        batch.truncate(to: 10)
        #expect(batch.count == 10)
        #expect(batch[9].externalID == all[9].externalID)
        batch.removeAll()
        #expect(batch.isEmpty)
        #expect(batch.byteCount == 0)
    }
}

/// A tiny deterministic generator (SplitMix64), so failures reproduce.
struct SplitMix {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
