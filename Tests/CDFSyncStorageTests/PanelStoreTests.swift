import Foundation
import Testing

@testable import CDFSyncStorage

typealias Change = PanelStore.Change
typealias Checkpoint = PanelStore.Checkpoint

/// Everything observable in a store, for "nothing changed" comparisons.
struct StoreSnapshot: Equatable {
    var records: [PanelStore.PanelRecord]
    var pending: Int
    var checkpoint: Checkpoint?
    var identCount: Int
    var nextParticipantID: UInt64?
    var outboxSequence: UInt64?

    init(_ store: PanelStore, pipeline: String = "p", includeRecords: Bool = true) throws {
        var records: [PanelStore.PanelRecord] = []
        if includeRecords { try store.forEachRecord(scope: nil) { records.append($0) } }
        self.records = records
        pending = try store.pendingOutboxCount()
        checkpoint = try store.checkpoint(pipeline: pipeline)
        identCount = try store.environment.read { try $0.count(store.ident) }
        nextParticipantID = try store.environment.read { try store.readCounter($0, MetaKey.nextParticipantID) }
        outboxSequence = try store.environment.read { try store.readCounter($0, MetaKey.outboxSequence) }
    }
}

@Suite struct PanelStoreTests {
    @Test func reopenKeepsRecordsIdsAndCheckpoint() throws {
        try withTemporaryDirectory { dir in
            let when = Date(timeIntervalSince1970: 1_763_000_000.25)
            do {
                let store = try PanelStore(directory: dir)
                let outcome = try store.apply(
                    [
                        Change(externalID: "b", commitVersion: 3, record: record("B")),
                        Change(externalID: "a", commitVersion: 3, record: record("A")),
                    ], scope: "s", pipeline: "p", checkpoint: Checkpoint(tableVersion: 3, updatedAt: when))
                #expect(outcome == .init(inserted: 2))
            }
            let store = try PanelStore(directory: dir)
            #expect(try store.count() == 2)
            #expect(try store.checkpoint(pipeline: "p") == Checkpoint(tableVersion: 3, updatedAt: when))
            let a = try #require(try store.record(externalID: "a", scope: "s"))
            #expect(a.participantID == 1)  // sorted by key before ids are allocated
            #expect(a.record == record("A"))
            #expect(a.commitVersion == 3)
            #expect(a.scope == "s" && a.externalID == "a")
            #expect(try store.record(externalID: "b", scope: "s")?.participantID == 2)
            #expect(try store.record(externalID: "a", scope: "other") == nil)
            #expect(try store.pendingOutboxCount() == 2)
        }
    }

    @Test func aStoreWithAnotherLayoutVersionIsRefused() throws {
        try withTemporaryDirectory { dir in
            do {
                let store = try PanelStore(directory: dir)
                #expect(try store.environment.read { try $0.get(store.meta, key: MetaKey.formatVersion) } == bytes("3"))
                try store.environment.write { try $0.put(store.meta, key: MetaKey.formatVersion, value: bytes("4")) }
            }
            let error = try #require(throws: StorageError.self) { try PanelStore(directory: dir) }
            #expect(error.code == .versionMismatch)
            #expect(error.message.contains(dir))
        }
    }

    @Test func participantIDsAreStableAcrossReopenAndUpdates() throws {
        try withTemporaryDirectory { dir in
            do {
                let store = try PanelStore(directory: dir)
                _ = try store.apply(
                    ["c", "a", "b"].map { Change(externalID: $0, commitVersion: 1, record: record($0)) },
                    scope: "s", pipeline: "p", checkpoint: nil)
            }
            let store = try PanelStore(directory: dir)
            let outcome = try store.apply(
                [
                    Change(externalID: "a", commitVersion: 2, record: record("a", 2)),
                    Change(externalID: "0-new", commitVersion: 2, record: record("new")),
                ], scope: "s", pipeline: "p", checkpoint: nil)
            #expect(outcome == .init(inserted: 1, updated: 1))
            #expect(try store.participantID(externalID: "a", scope: "s") == 1)
            #expect(try store.participantID(externalID: "b", scope: "s") == 2)
            #expect(try store.participantID(externalID: "c", scope: "s") == 3)
            // A new key gets the next id even though it sorts first.
            #expect(try store.participantID(externalID: "0-new", scope: "s") == 4)
            #expect(try store.record(externalID: "a", scope: "s")?.record == record("a", 2))
        }
    }

    /// New ids are allocated in LMDB key order (bytewise), whatever the input order and however long the
    /// prefix the ids share.
    @Test(arguments: ["", "tenant-42/participants/", "ext-0000"])
    func newIDsFollowBytewiseKeyOrder(prefix: String) throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            var generator = SystemRandomNumberGenerator()
            let alphabet = Array("0aZ9-_ü\u{7F}")
            var ids = Set<String>([prefix, prefix + "1", prefix + "10", prefix + "1\u{1}", prefix + "2", prefix + "ü"])
            while ids.count < 600 {
                let length = Int.random(in: 0...12, using: &generator)
                ids.insert(prefix + String((0..<length).map { _ in alphabet.randomElement(using: &generator)! }))
            }
            let input = ids.shuffled(using: &generator)
            _ = try store.apply(
                input.map { Change(externalID: $0, commitVersion: 1, record: record("r")) }, scope: "s", pipeline: "p",
                checkpoint: nil)
            var allocated: [String] = []
            try store.forEachRecord(scope: "s") { allocated.append($0.externalID) }
            let expected = ids.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            #expect(allocated == expected)
        }
    }

    /// Every row is applied in batch order (as if one at a time): the highest version wins, a tie goes to the later
    /// row, an older row is skipped, and every change in between is an outbox line.
    @Test func rowsOfAKeyApplyInBatchOrderAndTheHighestVersionWins() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            let outcome = try store.apply(
                [
                    Change(externalID: "a", commitVersion: 1, record: record("a1")),
                    Change(externalID: "a", commitVersion: 3, record: record("a3")),
                    Change(externalID: "b", commitVersion: 5, record: record("b-first")),
                    Change(externalID: "a", commitVersion: 2, record: record("a2")),
                    Change(externalID: "b", commitVersion: 5, record: record("b-later")),
                    Change(externalID: "b", commitVersion: 4, record: record("b4")),
                ], scope: "s", pipeline: "p", checkpoint: nil)
            #expect(outcome == .init(inserted: 2, updated: 2, skippedOlder: 2))
            #expect(try store.record(externalID: "a", scope: "s")?.record == record("a3"))
            #expect(try store.record(externalID: "a", scope: "s")?.commitVersion == 3)
            #expect(try store.record(externalID: "b", scope: "s")?.record == record("b-later"))
            #expect(try store.pendingOutboxCount() == 4, "a1, a3, b-first and b-later each changed the panel")
        }
    }

    @Test func olderVersionsAreSkippedAndReplaysAreUnchanged() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            func apply(_ version: Int64, _ content: [UInt8]) throws -> PanelStore.ApplyOutcome {
                try store.apply(
                    [Change(externalID: "k", commitVersion: version, record: content)], scope: "s", pipeline: "p",
                    checkpoint: nil)
            }
            #expect(try apply(5, record("v5")) == .init(inserted: 1))
            #expect(try store.pendingOutboxCount() == 1)

            // Older with different content: skipped, nothing written.
            #expect(try apply(3, record("v3")) == .init(skippedOlder: 1))
            #expect(try store.record(externalID: "k", scope: "s")?.record == record("v5"))
            // Replay of the same version and content: unchanged, no outbox entry.
            #expect(try apply(5, record("v5")) == .init(unchanged: 1))
            // Newer version, same content: unchanged, but the stored version moves forward.
            #expect(try apply(7, record("v5")) == .init(unchanged: 1))
            #expect(try store.record(externalID: "k", scope: "s")?.commitVersion == 7)
            #expect(try store.pendingOutboxCount() == 1)
            // Now 6 is older than the bumped version.
            #expect(try apply(6, record("v6")) == .init(skippedOlder: 1))
            #expect(try store.record(externalID: "k", scope: "s")?.record == record("v5"))
            // Newer and different: updated, one more outbox entry.
            #expect(try apply(8, record("v8")) == .init(updated: 1))
            #expect(try store.record(externalID: "k", scope: "s")?.record == record("v8"))
            #expect(try store.record(externalID: "k", scope: "s")?.commitVersion == 8)
            #expect(try store.pendingOutboxCount() == 2)
            // Same version, different content: the later arrival is applied (ties go to the later row).
            #expect(try apply(8, record("v8-b")) == .init(updated: 1))
            #expect(try store.pendingOutboxCount() == 3)
        }
    }

    @Test func unchangedContentProducesNoOutboxEntryInAMixedBatch() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            let rows = (0..<100).map { Change(externalID: "id-\($0)", commitVersion: 1, record: record("r\($0)")) }
            _ = try store.apply(rows, scope: "s", pipeline: "p", checkpoint: nil)
            var replay = rows.map { Change(externalID: $0.externalID, commitVersion: 2, record: $0.record) }
            replay[10].record = record("changed")
            let outcome = try store.apply(replay, scope: "s", pipeline: "p", checkpoint: nil)
            #expect(outcome == .init(updated: 1, unchanged: 99))
            #expect(try store.pendingOutboxCount() == 101)
        }
    }

    @Test func scopesAreSeparateIdentities() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            _ = try store.apply([Change(externalID: "x", commitVersion: 1, record: record("s1"))], scope: "s1",
                pipeline: "p", checkpoint: nil)
            let outcome = try store.apply([Change(externalID: "x", commitVersion: 1, record: record("s2"))],
                scope: "s2", pipeline: "p", checkpoint: nil)
            #expect(outcome == .init(inserted: 1))
            #expect(try store.record(externalID: "x", scope: "s1")?.record == record("s1"))
            #expect(try store.record(externalID: "x", scope: "s2")?.record == record("s2"))
        }
    }

    @Test func forEachRecordStreamsInParticipantOrderAndFiltersScope() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            _ = try store.apply(["z", "y", "x"].map { Change(externalID: $0, commitVersion: 1, record: record($0)) },
                scope: "s1", pipeline: "p", checkpoint: nil)
            _ = try store.apply(["a", "b"].map { Change(externalID: $0, commitVersion: 2, record: record($0)) },
                scope: "s", pipeline: "p", checkpoint: nil)
            _ = try store.apply([Change(externalID: "w", commitVersion: 3, record: record("w"))],
                scope: "s1", pipeline: "p", checkpoint: nil)
            var all: [(UInt64, String, String)] = []
            try store.forEachRecord(scope: nil) { all.append(($0.participantID, $0.scope, $0.externalID)) }
            #expect(all.map(\.0) == [1, 2, 3, 4, 5, 6])
            #expect(all.map(\.2) == ["x", "y", "z", "a", "b", "w"])
            var s1: [String] = []
            try store.forEachRecord(scope: "s1") { s1.append($0.externalID) }
            #expect(s1 == ["x", "y", "z", "w"])
            // "s" is a prefix of "s1" but a different scope.
            var s: [PanelStore.PanelRecord] = []
            try store.forEachRecord(scope: "s") { s.append($0) }
            #expect(s.map(\.externalID) == ["a", "b"])
            #expect(s.map(\.record) == [record("a"), record("b")])
            #expect(s.map(\.commitVersion) == [2, 2])
            #expect(try store.count() == 6)
        }
    }

    @Test func checkpointsMoveOnlyWhenGiven() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            #expect(try store.checkpoint(pipeline: "p") == nil)
            try store.setCheckpoint(Checkpoint(tableVersion: 10, watermark: "2026-01-01", watermarkKey: "k"), pipeline: "p")
            _ = try store.apply([Change(externalID: "a", commitVersion: 11, record: record("a"))], scope: "s",
                pipeline: "p", checkpoint: nil)
            #expect(try store.checkpoint(pipeline: "p")?.tableVersion == 10)
            _ = try store.apply([], scope: "s", pipeline: "q", checkpoint: Checkpoint(tableVersion: 12))
            #expect(try store.checkpoint(pipeline: "q") == Checkpoint(tableVersion: 12))
            // Dates round-trip exactly (sub-second precision included).
            let now = Date()
            try store.setCheckpoint(Checkpoint(tableVersion: 13, updatedAt: now), pipeline: "r")
            #expect(try store.checkpoint(pipeline: "r") == Checkpoint(tableVersion: 13, updatedAt: now))
            try store.setCheckpoint(Checkpoint(tableVersion: 12), pipeline: "r")  // replay may move it back
            #expect(try store.checkpoint(pipeline: "r")?.tableVersion == 12)
            let all = try store.checkpoints().filter { $0.pipeline != "r" }
            #expect(all.map(\.pipeline) == ["p", "q"])
            #expect(all[0].checkpoint == Checkpoint(tableVersion: 10, watermark: "2026-01-01", watermarkKey: "k"))
        }
    }

    @Test func applyFailingMidwayLeavesNothingBehind() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            _ = try store.apply(
                ["m", "n"].map { Change(externalID: $0, commitVersion: 1, record: record($0)) },
                scope: "s", pipeline: "p", checkpoint: Checkpoint(tableVersion: 1))
            let before = try StoreSnapshot(store)
            // Damage the ident entry of "n" so the batch fails after "a" and "m" were already written in the txn.
            #expect(try store.participantID(externalID: "n", scope: "s") != nil)
            try store.environment.write { try $0.put(store.ident, key: PanelStore.identityKey(scope: "s", externalID: "n"), value: [1, 2, 3]) }
            let error = try #require(throws: StorageError.self) {
                try store.apply(
                    [
                        Change(externalID: "a", commitVersion: 2, record: record("new")),
                        Change(externalID: "m", commitVersion: 2, record: record("m2")),
                        Change(externalID: "n", commitVersion: 2, record: record("n2")),
                    ], scope: "s", pipeline: "p", checkpoint: Checkpoint(tableVersion: 2))
            }
            #expect(error.code == .corrupted)
            let after = try StoreSnapshot(store, includeRecords: false)
            #expect(try store.record(externalID: "m", scope: "s")?.record == record("m"))
            #expect(try store.record(externalID: "m", scope: "s")?.commitVersion == 1)
            #expect(after.pending == before.pending)
            #expect(after.checkpoint == Checkpoint(tableVersion: 1))
            #expect(after.identCount == before.identCount)
            #expect(after.nextParticipantID == before.nextParticipantID)
            #expect(after.outboxSequence == before.outboxSequence)
            #expect(try store.participantID(externalID: "a", scope: "s") == nil)
            #expect(try store.count() == 2)
        }
    }

    @Test func mapFullDuringApplyAbortsTheWholeBatch() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir, mapSize: 256 << 10)
            _ = try store.apply([Change(externalID: "first", commitVersion: 1, record: record("first"))],
                scope: "s", pipeline: "p", checkpoint: Checkpoint(tableVersion: 1))
            let before = try StoreSnapshot(store)
            // Incompressible-ish records so the map really fills.
            var generator = SystemRandomNumberGenerator()
            let big = (0..<2000).map { i in
                Change(externalID: "k\(i)", commitVersion: 2,
                    record: bytes(#"{"blob":"\#((0..<400).map { _ in String(UInt8.random(in: 0...15, using: &generator), radix: 16) }.joined())"}"#))
            }
            let error = try #require(throws: StorageError.self) {
                try store.apply(big, scope: "s", pipeline: "p", checkpoint: Checkpoint(tableVersion: 2))
            }
            #expect(error.code == .mapFull)
            #expect(error.message.contains("map size"))
            #expect(try StoreSnapshot(store) == before)
            // Still usable afterwards.
            #expect(try store.apply([Change(externalID: "small", commitVersion: 3, record: record("s"))], scope: "s",
                pipeline: "p", checkpoint: nil) == .init(inserted: 1))
        }
    }

    @Test func invalidInputsAreRejectedBeforeAnyWrite() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            let ok = Change(externalID: "ok", commitVersion: 1, record: record("ok"))
            let cases: [(String, [Change])] = [
                ("bad\u{0}scope", [ok]),
                ("s", [ok, Change(externalID: "x", commitVersion: 1, record: bytes("[1,2]"))]),
                ("s", [ok, Change(externalID: String(repeating: "k", count: 600), commitVersion: 1, record: record("k"))]),
            ]
            for (scope, changes) in cases {
                let error = try #require(throws: StorageError.self) {
                    try store.apply(changes, scope: scope, pipeline: "p", checkpoint: Checkpoint(tableVersion: 9))
                }
                #expect(error.code == .invalidArgument)
            }
            #expect(try store.count() == 0)
            #expect(try store.checkpoint(pipeline: "p") == nil)
        }
    }

    @Test func applyUpdatesTheRunRecordInTheSameTransaction() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            let id = try store.appendRun(bytes(#"{"status":"running","inserted":0}"#))
            _ = try store.apply([Change(externalID: "a", commitVersion: 1, record: record("a"))], scope: "s",
                pipeline: "p", checkpoint: .init(tableVersion: 1), run: (id, bytes(#"{"status":"running","inserted":1}"#)))
            #expect(try store.run(id: id) == bytes(#"{"status":"running","inserted":1}"#))
            // An unknown run id fails the whole batch: no record, no checkpoint move.
            let error = try #require(throws: StorageError.self) {
                try store.apply([Change(externalID: "b", commitVersion: 2, record: record("b"))], scope: "s",
                    pipeline: "p", checkpoint: .init(tableVersion: 2), run: (id + 1, bytes("{}")))
            }
            #expect(error.code == .notFound)
            #expect(try store.record(externalID: "b", scope: "s") == nil)
            #expect(try store.checkpoint(pipeline: "p")?.tableVersion == 1)
            #expect(try store.pendingOutboxCount() == 1)
        }
    }

    @Test func runRecordsAreNewestFirst() throws {
        try withTemporaryDirectory { dir in
            do {
                let store = try PanelStore(directory: dir)
                #expect(try store.runs(limit: 5).isEmpty)
                let ids = try (0..<5).map { try store.appendRun(bytes(#"{"run":\#($0)}"#)) }
                #expect(ids == [1, 2, 3, 4, 5])
                try store.updateRun(id: 2, json: bytes(#"{"run":1,"status":"done"}"#))
                let error = try #require(throws: StorageError.self) { try store.updateRun(id: 99, json: bytes("{}")) }
                #expect(error.code == .notFound)
            }
            let store = try PanelStore(directory: dir)
            let latest = try store.runs(limit: 3)
            #expect(latest.map(\.id) == [5, 4, 3])
            #expect(latest[0].json == bytes(#"{"run":4}"#))
            #expect(try store.run(id: 2) == bytes(#"{"run":1,"status":"done"}"#))
            #expect(try store.run(id: 42) == nil)
            #expect(try store.runs(limit: 100).count == 5)
            #expect(try store.appendRun(bytes("{}")) == 6)
        }
    }

    /// The stored panel value of `externalID`, after its identity key header.
    func storedRecordBytes(_ store: PanelStore, _ externalID: String, scope: String = "s") throws -> [UInt8] {
        let pid = try #require(try store.participantID(externalID: externalID, scope: scope))
        let value = try #require(try store.environment.read { try $0.get(store.panel, key: bytesBE(pid)) })
        let keyLength = Int(value[0]) << 8 | Int(value[1])
        return Array(value[(2 + keyLength + 8)...])
    }

    @Test func largeRecordsAreStoredCompressedAndSmallOnesShapedOrAsIs() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            let small = record("small")
            let large = bytes(#"{"notes":"\#(String(repeating: "the same words again ", count: 100))"}"#)
            var generator = SystemRandomNumberGenerator()
            let noise = (0..<800).map { _ in "0123456789abcdefghijklmnopqrstuvwxyz".randomElement(using: &generator)! }
            let random = bytes(#"{"noise":"\#(String(noise))"}"#)
            _ = try store.apply(
                [
                    Change(externalID: "small", commitVersion: 1, record: small),
                    Change(externalID: "large", commitVersion: 1, record: large),
                    Change(externalID: "random", commitVersion: 1, record: random),
                ], scope: "s", pipeline: "p", checkpoint: nil)
            // A small record is stored shaped: its values under the id of its keys (RecordShapeTests).
            #expect(try storedRecordBytes(store, "small") == [RecordShape.tag, 0, 0, 0, 1] + bytes("\"small\"\u{1F}0"))
            #expect(try store.record(externalID: "small", scope: "s")?.record == small)
            let stored = try storedRecordBytes(store, "large")
            #expect(Array(stored.prefix(4)) == [0x28, 0xB5, 0x2F, 0xFD])
            #expect(stored.count < large.count / 4)
            #expect(try Zstd.decompress(stored) == large)
            let storedRandom = try storedRecordBytes(store, "random")
            #expect(storedRandom.first == UInt8(ascii: "{") || storedRandom.count < random.count)
            #expect(try store.record(externalID: "large", scope: "s")?.record == large)
            #expect(try store.record(externalID: "random", scope: "s")?.record == random)
            var streamed: [[UInt8]] = []
            try store.forEachRecord(scope: "s") { streamed.append($0.record) }
            #expect(streamed == [large, random, small])
        }
    }

    @Test func damagedCompressedRecordIsReportedNotReturned() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            let large = bytes(#"{"notes":"\#(String(repeating: "abc ", count: 400))"}"#)
            _ = try store.apply([Change(externalID: "x", commitVersion: 1, record: large)], scope: "s", pipeline: "p",
                checkpoint: nil)
            let pid = try #require(try store.participantID(externalID: "x", scope: "s"))
            var value = try #require(try store.environment.read { try $0.get(store.panel, key: bytesBE(pid)) })
            value.removeLast(6)  // truncate the frame
            try store.environment.write { try $0.put(store.panel, key: bytesBE(pid), value: value) }
            let error = try #require(throws: StorageError.self) { try store.record(externalID: "x", scope: "s") }
            #expect(error.code == .compression)
            #expect(error.message.contains("participant \(pid)"))
        }
    }
}

@Suite struct ExportAndStatisticsTests {
    @Test func exportWritesOneLinePerParticipantInIDOrder() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            _ = try store.apply(
                [
                    Change(externalID: "b", commitVersion: 4, record: record("B")),
                    Change(externalID: "a", commitVersion: 5, record: record("A")),
                ], scope: "s", pipeline: "p", checkpoint: nil)
            _ = try store.apply([Change(externalID: "z", commitVersion: 1, record: record("Z"))], scope: "t",
                pipeline: "p", checkpoint: nil)
            let path = dir + "/export.ndjson.zst"
            #expect(try store.exportRecords(scope: "s", to: path) == 2)
            var lines: [String] = []
            try ZstdFileReader(path: path).forEachLine { lines.append(String(decoding: $0, as: UTF8.self)) }
            #expect(lines == [
                #"{"participant_id":1,"scope":"s","external_id":"a","commit_version":5,"record":{"name":"A","n":0}}"#,
                #"{"participant_id":2,"scope":"s","external_id":"b","commit_version":4,"record":{"name":"B","n":0}}"#,
            ])
            #expect(try store.exportRecords(scope: nil, to: path) == 3)
            #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
        }
    }

    @Test func statisticsCountEveryDatabase() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db", mapSize: 1 << 30)
            for half in [0, 5] {  // two applies: two outbox frames, so delivery can rotate between them
                _ = try store.apply(
                    (half..<half + 5).map { Change(externalID: "k\($0)", commitVersion: 1, record: record("r")) },
                    scope: "s", pipeline: "p", checkpoint: nil)
            }
            _ = try store.deliver(to: dir + "/out", segmentMaxBytes: 400)
            _ = try store.apply([Change(externalID: "k0", commitVersion: 2, record: record("changed"))], scope: "s",
                pipeline: "p", checkpoint: nil)
            _ = try store.appendRun(bytes("{}"))
            let stats = try store.statistics()
            #expect(stats.participants == 10 && stats.identities == 10)
            #expect(stats.pendingOutbox == 1 && stats.outboxSequence == 11 && stats.deliveredSequence == 10)
            #expect(stats.segments == (try store.deliveredSegments().count) && stats.segments > 1)
            #expect(stats.runs == 1 && stats.nextParticipantID == 11)
            #expect(stats.conflicts == 0 && stats.linkedKeys == 0 && stats.events == 0)
            _ = try store.apply([Change(externalID: "l", commitVersion: 1, record: record("l"), email: "k0@x.io")],
                scope: "t", pipeline: "p", checkpoint: nil)
            _ = try store.apply([Change(externalID: "k1", commitVersion: 3, record: record("c"), email: "k0@x.io")],
                scope: "s", pipeline: "p", checkpoint: nil)
            _ = try store.applyEvents([.init(eventID: "e", userExternalID: nil, commitVersion: 1, record: bytes("{}"))],
                scope: "ev", identityScope: nil, pipeline: "p", checkpoint: nil)
            let more = try store.statistics()
            // "l" created a participant with the email, then k1 (existing) claims it: one conflict, no link.
            #expect(more.conflicts == 1 && more.linkedKeys == 0 && more.events == 1)
            #expect(more.identities == 11 && more.participants == 11)
            _ = try store.apply([Change(externalID: "m", commitVersion: 1, record: record("m"), email: "k0@x.io")],
                scope: "u", pipeline: "p", checkpoint: nil)
            #expect(try store.statistics().linkedKeys == 1)
            #expect(stats.mapSize == 1 << 30)
            #expect(stats.usedBytes > 0 && stats.usedBytes < stats.mapSize)
        }
    }
}
