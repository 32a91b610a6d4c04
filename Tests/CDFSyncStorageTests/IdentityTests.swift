import Foundation
import Testing

@testable import CDFSyncStorage

/// The JSON objects of the newest-first conflict entries.
func conflictObjects(_ store: PanelStore) throws -> [[String: Any]] {
    try store.conflicts(limit: 100).map { try jsonObject(String(decoding: $0, as: UTF8.self)) }
}

@Suite struct IdentityTests {
    @Test func newSourceKeyLinksByEmail() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            #expect(try store.apply([Change(externalID: "u1", commitVersion: 1, record: record("a"), email: "a@x.io")],
                scope: "crm", pipeline: "p", checkpoint: nil) == .init(inserted: 1))
            let o = try store.apply([Change(externalID: "77", commitVersion: 4, record: record("a-shop"), email: "a@x.io")],
                scope: "shop", pipeline: "q", checkpoint: nil)
            #expect(o == .init(linked: 1))
            #expect(try store.participantID(externalID: "77", scope: "shop") == 1)
            #expect(try store.count() == 1)
            let r = try #require(try store.record(externalID: "77", scope: "shop"))
            #expect(r.participantID == 1 && r.record == record("a-shop") && r.commitVersion == 4)
            #expect(r.scope == "shop" && r.externalID == "77")
            let expectedKeys = [PanelStore.SourceKey(scope: "crm", externalID: "u1"), .init(scope: "shop", externalID: "77")]
            #expect(r.sourceKeys == expectedKeys)
            #expect(try store.sourceKeys(participantID: 1).map { "\($0.scope)/\($0.externalID)" } == ["crm/u1", "shop/77"])
            #expect(try store.sourceKeys(participantID: 99).isEmpty)
            var all: [PanelStore.PanelRecord] = []
            try store.forEachRecord(scope: nil) { all.append($0) }
            #expect(all.count == 1 && all[0].sourceKeys == expectedKeys && all[0].scope == "crm")
            // The first source key still has its own version: an older row for it is skipped.
            #expect(try store.apply([Change(externalID: "u1", commitVersion: 0, record: record("old"))], scope: "crm",
                pipeline: "p", checkpoint: nil) == .init(skippedOlder: 1))
            // And a newer one updates the same participant.
            #expect(try store.apply([Change(externalID: "u1", commitVersion: 2, record: record("a2"), email: "a@x.io")],
                scope: "crm", pipeline: "p", checkpoint: nil) == .init(updated: 1))
            #expect(try store.record(externalID: "77", scope: "shop")?.record == record("a2"))
            let lines = try deliveredLines(dir + "-out", try store.deliver(to: dir + "-out").files)
            defer { try? FileManager.default.removeItem(atPath: dir + "-out") }
            #expect(lines == [
                #"{"seq":1,"op":"insert","participant_id":1,"scope":"crm","external_id":"u1","commit_version":1,"record":{"name":"a","n":0}}"#,
                #"{"seq":2,"op":"update","participant_id":1,"scope":"shop","external_id":"77","commit_version":4,"record":{"name":"a-shop","n":0}}"#,
                #"{"seq":3,"op":"update","participant_id":1,"scope":"crm","external_id":"u1","commit_version":2,"record":{"name":"a2","n":0}}"#,
            ])
            #expect(try store.conflicts(limit: 10).isEmpty)
        }
    }

    @Test func newSourceKeyLinksByPhoneWhenEmailIsUnknown() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            _ = try store.apply([Change(externalID: "u1", commitVersion: 1, record: record("a"), phone: "+4915100000001")],
                scope: "crm", pipeline: "p", checkpoint: nil)
            let o = try store.apply(
                [Change(externalID: "s9", commitVersion: 1, record: record("s"), email: "new@x.io", phone: "+4915100000001")],
                scope: "shop", pipeline: "p", checkpoint: nil)
            #expect(o == .init(linked: 1))
            #expect(try store.participantID(externalID: "s9", scope: "shop") == 1)
            // The participant had no email: the new one is now indexed to it, so a third source links by email.
            #expect(try store.apply([Change(externalID: "z", commitVersion: 1, record: record("z"), email: "new@x.io")],
                scope: "app", pipeline: "p", checkpoint: nil) == .init(linked: 1))
            #expect(try store.participantID(externalID: "z", scope: "app") == 1)
            // Nothing matches: a new participant.
            #expect(try store.apply([Change(externalID: "y", commitVersion: 1, record: record("y"), email: "y@x.io",
                phone: "+4915100000002")], scope: "app", pipeline: "p", checkpoint: nil) == .init(inserted: 1))
            #expect(try store.participantID(externalID: "y", scope: "app") == 2)
        }
    }

    @Test func externalIDAgainstAnotherParticipantsEmailIsAConflictNotAMerge() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            _ = try store.apply(
                [
                    Change(externalID: "a", commitVersion: 1, record: record("a"), email: "a@x.io"),
                    Change(externalID: "b", commitVersion: 1, record: record("b"), email: "b@x.io"),
                ], scope: "crm", pipeline: "p", checkpoint: nil)
            // "a" now claims b's email.
            let o = try store.apply([Change(externalID: "a", commitVersion: 2, record: record("a2"), email: "b@x.io")],
                scope: "crm", pipeline: "p", checkpoint: nil)
            #expect(o == .init(updated: 1, conflicts: 1))
            #expect(try store.record(externalID: "a", scope: "crm")?.record == record("a2"))  // A still updated
            #expect(try store.count() == 2)  // never merged
            let c = try #require(try conflictObjects(store).first)
            #expect(c["seq"] as? Int == 1 && c["scope"] as? String == "crm" && c["external_id"] as? String == "a")
            #expect(c["commit_version"] as? Int == 2 && c["key"] as? String == "email" && c["value"] as? String == "b@x.io")
            #expect(c["participant_id"] as? Int == 1 && c["other_participant_id"] as? Int == 2)
            // The index still belongs to B: a new key with that email links to B.
            #expect(try store.apply([Change(externalID: "n", commitVersion: 1, record: record("n"), email: "b@x.io")],
                scope: "shop", pipeline: "p", checkpoint: nil) == .init(linked: 1))
            #expect(try store.participantID(externalID: "n", scope: "shop") == 2)
            // Replaying the same row does not record the conflict again.
            #expect(try store.apply([Change(externalID: "a", commitVersion: 2, record: record("a2"), email: "b@x.io")],
                scope: "crm", pipeline: "p", checkpoint: nil) == .init(unchanged: 1))
            #expect(try store.conflicts(limit: 10).count == 1)
        }
    }

    @Test func emailLinksAndAnotherParticipantsPhoneIsAConflict() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            _ = try store.apply(
                [
                    Change(externalID: "b", commitVersion: 1, record: record("b"), email: "b@x.io"),
                    Change(externalID: "c", commitVersion: 1, record: record("c"), phone: "+1555000"),
                ], scope: "crm", pipeline: "p", checkpoint: nil)
            let o = try store.apply([Change(externalID: "k", commitVersion: 3, record: record("k"), email: "b@x.io",
                phone: "+1555000")], scope: "shop", pipeline: "p", checkpoint: nil)
            #expect(o == .init(linked: 1, conflicts: 1))
            #expect(try store.participantID(externalID: "k", scope: "shop") == 1)
            let c = try #require(try conflictObjects(store).first)
            #expect(c["key"] as? String == "phone" && c["value"] as? String == "+1555000")
            #expect(c["participant_id"] as? Int == 1 && c["other_participant_id"] as? Int == 2)
            #expect(c["scope"] as? String == "shop" && c["external_id"] as? String == "k")
        }
    }

    @Test func keysInOneBatchSeeEachOthersEmailAndPhoneInBatchOrder() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            // Applied in batch order, as one row at a time would be (whatever the keys' sort order): "c" creates
            // participant 1 with the phone, "b" participant 2 with the email; "a" links to 2 by that email and its
            // phone, which 1 holds, is a conflict; "d" is new.
            let o = try store.apply(
                [
                    Change(externalID: "c", commitVersion: 1, record: record("c"), phone: "+100"),
                    Change(externalID: "b", commitVersion: 1, record: record("b"), email: "x@y.io"),
                    Change(externalID: "a", commitVersion: 1, record: record("a"), email: "x@y.io", phone: "+100"),
                    Change(externalID: "d", commitVersion: 1, record: record("d"), email: "d@y.io"),
                ], scope: "s", pipeline: "p", checkpoint: nil)
            #expect(o == .init(inserted: 3, linked: 1, conflicts: 1))
            let pids = try ["a", "b", "c", "d"].map { try store.participantID(externalID: $0, scope: "s") }
            #expect(pids[0] != nil && pids[0] == pids[1] && Set(pids).count == 3, "\(pids)")
            let conflict = try #require(try conflictObjects(store).first)
            #expect(conflict["external_id"] as? String == "a" && conflict["key"] as? String == "phone")
            #expect(conflict["other_participant_id"] as? Int == pids[2].map(Int.init))
            // And the entries are in LMDB afterwards.
            #expect(try store.environment.read { try $0.count(store.emailIndex) } == 2)
            #expect(try store.environment.read { try $0.count(store.phoneIndex) } == 1)
        }
    }

    @Test func emailChangeRepointsTheIndex() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            _ = try store.apply([Change(externalID: "a", commitVersion: 1, record: record("a"), email: "old@x.io")],
                scope: "crm", pipeline: "p", checkpoint: nil)
            _ = try store.apply([Change(externalID: "a", commitVersion: 2, record: record("a2"), email: "new@x.io")],
                scope: "crm", pipeline: "p", checkpoint: nil)
            // The new email resolves to the participant, the old one is free again.
            #expect(try store.apply([Change(externalID: "x", commitVersion: 1, record: record("x"), email: "new@x.io")],
                scope: "shop", pipeline: "p", checkpoint: nil) == .init(linked: 1))
            #expect(try store.apply([Change(externalID: "y", commitVersion: 1, record: record("y"), email: "old@x.io")],
                scope: "shop", pipeline: "p", checkpoint: nil) == .init(inserted: 1))
            #expect(try store.participantID(externalID: "x", scope: "shop") == 1)
            #expect(try store.participantID(externalID: "y", scope: "shop") == 2)
            #expect(try store.conflicts(limit: 10).isEmpty)
        }
    }

    @Test func participantIDsAndLinksAreStableAcrossReopen() throws {
        try withTemporaryDirectory { dir in
            do {
                let store = try PanelStore(directory: dir)
                _ = try store.apply(
                    (0..<50).map { Change(externalID: "u\($0)", commitVersion: 1, record: record("u", $0), email: "u\($0)@x.io") },
                    scope: "crm", pipeline: "p", checkpoint: nil)
            }
            let store = try PanelStore(directory: dir)
            // After reopen (filter rebuilt from LMDB) every email is still found: links, not new participants.
            let o = try store.apply(
                (0..<50).map { Change(externalID: "s\($0)", commitVersion: 1, record: record("s", $0), email: "u\($0)@x.io") },
                scope: "shop", pipeline: "p", checkpoint: nil)
            #expect(o == .init(linked: 50))
            for i in [0, 17, 49] {
                let pid = try #require(try store.participantID(externalID: "u\(i)", scope: "crm"))
                #expect(try store.participantID(externalID: "s\(i)", scope: "shop") == pid)
            }
            #expect(try store.count() == 50)
        }
    }

    @Test func bloomFilterNeverHidesAnExistingKey() throws {
        try withTemporaryDirectory { dir in
            let n = 20_000
            do {
                let store = try PanelStore(directory: dir)
                for b in 0..<4 {
                    _ = try store.apply(
                        (b * n / 4..<(b + 1) * n / 4).map {
                            Change(externalID: "k\($0)", commitVersion: 1, record: record("k", $0), phone: "+1\($0)")
                        }, scope: "s", pipeline: "p", checkpoint: nil)
                }
            }
            // A fresh process view: the filter is rebuilt from the store. Every existing key must be found
            // (unchanged, not inserted), every new key must be inserted.
            let store = try PanelStore(directory: dir)
            let existing = (0..<n).map { Change(externalID: "k\($0)", commitVersion: 1, record: record("k", $0), phone: "+1\($0)") }
            let fresh = (n..<2 * n).map { Change(externalID: "k\($0)", commitVersion: 1, record: record("k", $0)) }
            #expect(try store.apply(existing + fresh, scope: "s", pipeline: "p", checkpoint: nil)
                == .init(inserted: n, unchanged: n))
            // Direct checks on the filter: every inserted key is reported present.
            let filter = store.filter
            for i in stride(from: 0, to: 2 * n, by: 97) {
                #expect(filter.mayContain(.ident, PanelStore.identityKey(scope: "s", externalID: "k\(i)")))
            }
            for i in stride(from: 0, to: n, by: 101) { #expect(filter.mayContain(.phone, bytes("+1\(i)"))) }
            let small = MembershipFilter(capacity: 100)
            let keys = (0..<5000).map { bytes("key-\($0)") }
            for k in keys { small.insert(.ident, k) }  // far over capacity: more false positives, never a negative
            #expect(keys.allSatisfy { small.mayContain(.ident, $0) })
        }
    }

    @Test func preparedChangesGiveIdenticalRecordsAndOutboxLines() throws {
        try withTemporaryDirectory { dir in
            let large = bytes(#"{"notes":"\#(String(repeating: "the same words again ", count: 60))"}"#)
            func batch(_ v: Int64) -> [Change] {
                (0..<30).map { i in
                    Change(externalID: "id-\(i)", commitVersion: v, record: i % 3 == 0 ? large : record("r\(v)", i),
                        email: i % 5 == 0 ? "e\(i)@x.io" : nil)
                }
            }
            var outputs: [[String]] = []
            var stored: [[PanelStore.PanelRecord]] = []
            for prepared in [false, true] {
                let store = try PanelStore(directory: dir + "/db-\(prepared)")
                let compressor = try ZstdCompressor(level: store.recordCompressionLevel)
                for v in Int64(1)...2 {
                    var changes = batch(v)
                    if prepared {
                        try store.prepare(&changes, compressor: compressor)
                        #expect(changes.allSatisfy { $0.contentHash != nil })
                        #expect(changes.filter { $0.compressedRecord != nil }.count == 10)
                    }
                    _ = try store.apply(changes, scope: "s", pipeline: "p", checkpoint: nil)
                }
                var records: [PanelStore.PanelRecord] = []
                try store.forEachRecord(scope: nil) { records.append($0) }
                stored.append(records)
                outputs.append(try deliveredLines(dir + "/out-\(prepared)", try store.deliver(to: dir + "/out-\(prepared)").files))
                // The stored value of a large record is the same frame either way.
                let value = try #require(try store.environment.read { try $0.get(store.panel, key: bytesBE(1)) })
                #expect(value.contains(0x28))
            }
            #expect(stored[0] == stored[1])
            #expect(outputs[0] == outputs[1])
            #expect(outputs[0].count == 50)  // 30 inserts + 20 changed (the large records are unchanged)
            let a = try directoryContents(dir + "/out-false").filter { $0.key.hasPrefix("changes-") }
            let b = try directoryContents(dir + "/out-true").filter { $0.key.hasPrefix("changes-") }
            #expect(a == b)
        }
    }
}

@Suite struct EventTests {
    @Test func eventsAreDeduplicatedAcrossCallsAndReopenAndResolveUsers() throws {
        try withTemporaryDirectory { dir in
            do {
                let store = try PanelStore(directory: dir + "/db")
                _ = try store.apply([Change(externalID: "u1", commitVersion: 1, record: record("u1"))], scope: "crm",
                    pipeline: "p", checkpoint: nil)
                let o = try store.applyEvents(
                    [
                        .init(eventID: "e1", userExternalID: "u1", commitVersion: 5, record: bytes(#"{"type":"open"}"#)),
                        .init(eventID: "e2", userExternalID: "ghost", commitVersion: 5, record: bytes(#"{"type":"x"}"#)),
                        .init(eventID: "e1", userExternalID: "u1", commitVersion: 5, record: bytes(#"{"type":"open"}"#)),
                        .init(eventID: "e3", userExternalID: nil, commitVersion: 6, record: bytes(#"{"type":"anon"}"#)),
                    ], scope: "events", identityScope: "crm", pipeline: "ev", checkpoint: .init(tableVersion: 6))
                #expect(o == .init(inserted: 3, duplicates: 1, unresolvedUsers: 2))
                #expect(try store.checkpoint(pipeline: "ev")?.tableVersion == 6)
                #expect(try store.pendingOutboxCount() == 4)
                #expect(try store.event(eventID: "e1", scope: "events") == 1)
                #expect(try store.event(eventID: "e2", scope: "events") == 0)
            }
            let store = try PanelStore(directory: dir + "/db")
            // A replay / full refresh after reopen: the known ids are duplicates, only e4 is new.
            let o = try store.applyEvents(
                [
                    .init(eventID: "e2", userExternalID: "ghost", commitVersion: 5, record: bytes(#"{"type":"x"}"#)),
                    .init(eventID: "e4", userExternalID: "u1", commitVersion: 7, record: bytes(#"{"type":"click"}"#)),
                ], scope: "events", identityScope: "crm", pipeline: "ev", checkpoint: nil)
            #expect(o == .init(inserted: 1, duplicates: 1))
            let lines = try deliveredLines(dir + "/out", try store.deliver(to: dir + "/out").files)
            #expect(lines == [
                #"{"seq":1,"op":"insert","participant_id":1,"scope":"crm","external_id":"u1","commit_version":1,"record":{"name":"u1","n":0}}"#,
                #"{"seq":2,"op":"event","event_id":"e1","participant_id":1,"scope":"events","user_external_id":"u1","commit_version":5,"record":{"type":"open"}}"#,
                #"{"seq":3,"op":"event","event_id":"e2","participant_id":null,"scope":"events","user_external_id":"ghost","commit_version":5,"record":{"type":"x"}}"#,
                #"{"seq":4,"op":"event","event_id":"e3","participant_id":null,"scope":"events","user_external_id":null,"commit_version":6,"record":{"type":"anon"}}"#,
                #"{"seq":5,"op":"event","event_id":"e4","participant_id":1,"scope":"events","user_external_id":"u1","commit_version":7,"record":{"type":"click"}}"#,
            ])
            for line in lines { _ = try jsonObject(line) }
            // Nothing new: no outbox entry, no checkpoint change unless given.
            #expect(try store.applyEvents([.init(eventID: "e4", userExternalID: "u1", commitVersion: 7, record: bytes("{}"))],
                scope: "events", identityScope: "crm", pipeline: "ev", checkpoint: nil) == .init(duplicates: 1))
            #expect(try store.pendingOutboxCount() == 0)
        }
    }
}

@Suite struct FrameOutboxTests {
    @Test func concatenatedFrameSegmentsDecompressWithTheZstdCLI() throws {
        let zstd = "/usr/bin/zstd"
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            try applyHistory(store)
            let out = dir + "/out"
            let files = try store.deliver(to: out, segmentMaxBytes: 1 << 20).files
            #expect(files.count == 1)
            let expected = try deliveredLines(out, files).joined(separator: "\n") + "\n"
            // One segment holds several frames (one per apply).
            #expect(try Zstd.decompress(Array(try Data(contentsOf: URL(fileURLWithPath: out + "/" + files[0]))))
                == bytes(expected))
            guard FileManager.default.isExecutableFile(atPath: zstd) else {
                print("skipping the zstd CLI check: \(zstd) is not installed")
                return
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: zstd)
            process.arguments = ["-d", "-c", out + "/" + files[0]]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            #expect(String(decoding: data, as: UTF8.self) == expected)
        }
    }

    @Test func pendingOutboxCountCountsLinesNotFrames() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            _ = try store.apply((0..<7).map { Change(externalID: "k\($0)", commitVersion: 1, record: record("k")) },
                scope: "s", pipeline: "p", checkpoint: nil)
            _ = try store.apply([Change(externalID: "k0", commitVersion: 2, record: record("k2"))], scope: "s",
                pipeline: "p", checkpoint: nil)
            #expect(try store.pendingOutboxCount() == 8)
            #expect(try store.environment.read { try $0.count(store.outbox) } == 2)
            #expect(try store.statistics().pendingOutbox == 8)
        }
    }
}
