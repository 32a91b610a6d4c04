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
            // Equal but for when they were seen (the wall clock of each apply).
            func withoutSeenAt(_ store: PanelStore) throws -> [String] {
                try store.conflicts(limit: 10_000).map {
                    String(decoding: $0, as: UTF8.self).replacing(/,"seen_at":"[^"]*"/, with: "")
                }
            }
            #expect(try withoutSeenAt(a) == withoutSeenAt(b))
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

    /// The record writer hands a row's external id over as the result's bytes: the batch must be the one the same
    /// rows appended with `String` ids make — same ids, records, shaped values, hashes and byte count.
    @Test func anIdGivenAsBytesMakesTheBatchAStringIdMakes() {
        let keys = Array(#"{"a":"1","b":"2"}"#.utf8).withUnsafeBytes { RecordShape.keys(of: $0) }
        let ids = ["P-1", "İstanbul-7", "😀", "a\"quote"]
        var byString = PanelStore.ChangeBatch()
        var byBytes = PanelStore.ChangeBatch()
        for (i, id) in ids.enumerated() {
            let record = Array(#"{"a":"\#(i)","b":"x"}"#.utf8)
            // `"i"` at 5..<8, `"x"` at 13..<16.
            let ranges = [5, 8, 13, 16]
            record.withUnsafeBytes { r in
                ranges.withUnsafeBufferPointer { v in
                    if i % 2 == 0 {
                        byString.append(externalID: id, commitVersion: Int64(i), record: r, shape: keys, valueRanges: v)
                        Array(id.utf8).withUnsafeBytes {
                            byBytes.append(
                                externalIDBytes: $0, commitVersion: Int64(i), record: r, shape: keys, valueRanges: v)
                        }
                    } else {
                        byString.append(externalID: id, commitVersion: Int64(i), record: r)
                        Array(id.utf8).withUnsafeBytes { byBytes.append(externalIDBytes: $0, commitVersion: Int64(i), record: r) }
                    }
                }
            }
        }
        #expect(byBytes.byteCount == byString.byteCount)
        #expect(byBytes.longestID == byString.longestID)
        #expect(byBytes.rowShapes == byString.rowShapes)
        #expect(byBytes.rowShapes.filter { $0 >= 0 }.count == 2, "the even rows were appended shaped")
        #expect(byBytes.shapedOffsets == byString.shapedOffsets)
        #expect(byBytes.shapedValues == byString.shapedValues)
        #expect(byBytes.shapedValues == Array(#""0"\#u{1F}"x""2"\#u{1F}"x""#.utf8), "the values, joined by the separator")
        for i in ids.indices {
            #expect(byBytes[i].externalID == ids[i])
            #expect(byBytes[i].record == byString[i].record)
            #expect(byBytes[i].contentHash == byString[i].contentHash)
        }
    }

    /// Apply checks a batch from what it noted while rows were appended; dropping the offending rows must clear
    /// the note, and keeping them must not.
    @Test func inputChecksFollowTruncation() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir, durable: false)
            let good = Self.changes(seed: 4, count: 20)
            let bad: [(PanelStore.Change, String)] = [
                (PanelStore.Change(externalID: "x", commitVersion: 1, record: Array("[1]".utf8)), "not a JSON object"),
                (PanelStore.Change(externalID: "y", commitVersion: 1, record: Array("{".utf8)), "not a JSON object"),
                (PanelStore.Change(externalID: "z", commitVersion: 1, record: Array("{\"a\":1".utf8)), "not a JSON object"),
                (PanelStore.Change(externalID: String(repeating: "k", count: 600), commitVersion: 1,
                    record: Array("{}".utf8)), "600 bytes"),
                (PanelStore.Change(externalID: "e", commitVersion: 1, record: Array("{}".utf8),
                    email: String(repeating: "e", count: 600) + "@example.com"), "email or phone"),
            ]
            for (row, message) in bad {
                let before = try store.count()
                var batch = PanelStore.ChangeBatch()
                for c in good { batch.append(c) }
                batch.append(row)
                for c in good { batch.append(c) }
                // Still there after dropping rows behind it: rejected, naming the problem, nothing written.
                batch.truncate(to: good.count + 1)
                let error = try #require(throws: StorageError.self) {
                    try store.apply(batch, scope: "s", pipeline: "p", checkpoint: .init(tableVersion: 1))
                }
                #expect(error.code == .invalidArgument)
                #expect(error.message.contains(message), "\(error.message)")
                #expect(try store.count() == before)
                // Dropped: the rest applies.
                batch.truncate(to: good.count)
                _ = try store.apply(batch, scope: "s\(message.count)", pipeline: "p", checkpoint: nil)
            }
            #expect(try store.checkpoint(pipeline: "p") == nil)
        }
    }

    /// The batch lookup answers each probe against the filter as it was plus the probes before it, and leaves
    /// every probe inserted — whatever the batch's size relative to the prefetch distance.
    @Test(arguments: [0, 1, 5, 12, 13, 40, 5_000])
    func filterBatchLookupIsSequentialLookupThenInsert(count: Int) {
        let a = MembershipFilter(capacity: 1_000)
        let b = MembershipFilter(capacity: 1_000)
        var rng = SplitMix(UInt64(count) + 7)
        // Half of the keys already present; some keys repeat within the batch.
        var keys: [[UInt8]] = []
        for i in 0..<count {
            let k = Array("key-\(rng.next() % UInt64(max(1, count)))".utf8)
            keys.append(k)
            if i % 2 == 0 { a.insert(.ident, k); b.insert(.ident, k) }
        }
        var lookups = keys.map { k in (probe: k.withUnsafeBytes { a.probe(.ident, $0) }, maybeKnown: false) }
        a.lookUpAndInsert(&lookups)
        for (i, k) in keys.enumerated() {
            let known = b.mayContain(.ident, k)
            if !known { b.insert(.ident, k) }
            #expect(lookups[i].maybeKnown == known, "key \(i)")
            #expect(a.mayContain(.ident, k))
        }
        #expect(a.words == b.words)
        #expect(a.count == b.count)
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

@Suite("Batch plan")
struct BatchPlanTests {
    func plan(_ ids: [String]) -> BatchPlan {
        var flat: [UInt8] = []
        var offsets = [0]
        for id in ids {
            flat += Array(id.utf8)
            offsets.append(flat.count)
        }
        return flat.withUnsafeBytes { BatchPlan(ids: $0, offsets: offsets, count: ids.count) }
    }

    @Test func rowsAreGroupedByKeyInIndexOrderAndKeepTheirBatchOrderWithinAKey() {
        let ids = ["b", "a", "b", "ab", "a", "", "b"]
        let p = plan(ids)
        #expect(p.groupCount == 4)
        #expect(p.sorted == [5, 1, 4, 3, 0, 2, 6], "by bytes ('' < a < ab < b), then by position")
        #expect((0..<p.groupCount).map { Array(p.rows(of: $0)) } == [[5], [1, 4], [3], [0, 2, 6]])
        #expect((0..<p.groupCount).map { ids[p.firstRow(of: $0)] } == ["", "a", "ab", "b"])
        #expect(p.groupOf.map { Int($0) } == [3, 1, 3, 2, 1, 0, 3])
    }

    /// Against a plain sort, for ids sharing long prefixes (the 8-byte prefix is taken after what all share).
    @Test func agreesWithAPlainSortOnRandomIdsWithSharedPrefixes() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let prefix = ["", "tenant-0000000", "ext-"][Int.random(in: 0..<3, using: &rng)]
            let ids = (0..<Int.random(in: 0..<60, using: &rng)).map { _ in
                prefix + String(Int.random(in: 0..<40, using: &rng), radix: 7) + (Bool.random() ? "x" : "")
            }
            let p = plan(ids)
            let expected = ids.indices.sorted { a, b in
                let (x, y) = (Array(ids[a].utf8), Array(ids[b].utf8))
                return x == y ? a < b : x.lexicographicallyPrecedes(y)
            }
            #expect(p.sorted == expected, "\(ids)")
            #expect(p.groupCount == Set(ids).count)
            for g in 0..<p.groupCount { #expect(Set(p.rows(of: g).map { ids[$0] }).count == 1) }
        }
    }
}
