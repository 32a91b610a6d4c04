import Foundation
import Testing

@testable import CDFSyncStorage

/// `PanelStore.markAbsent` and the `in_source` field (issue 26 §4), on the store alone.
@Suite struct MarkAbsentTests {
    func inSource(_ store: PanelStore, _ id: String, scope: String = "s") throws -> Bool? {
        let r = try #require(try store.record(externalID: id, scope: scope))
        return try jsonObject(String(decoding: r.record, as: UTF8.self))["in_source"] as? Bool
    }

    @Test func theFieldIsTheRecordsLastKeyAndReplacesItself() {
        func set(_ value: Bool, _ json: String) -> String {
            String(decoding: Array(json.utf8).withUnsafeBytes { InSource.set(value, in: $0) }, as: UTF8.self)
        }
        #expect(set(false, #"{"a":1}"#) == #"{"a":1,"in_source":false}"#)
        #expect(set(true, #"{"a":1,"in_source":false}"#) == #"{"a":1,"in_source":true}"#)
        #expect(set(false, "{}") == #"{"in_source":false}"#)
        #expect(set(true, #"{"in_source":false}"#) == #"{"in_source":true}"#)
        // Only the engine's own trailing key is replaced: a nested one, or one inside a string, is data.
        #expect(set(false, #"{"attributes":{"x":1,"in_source":true}}"#)
            == #"{"attributes":{"x":1,"in_source":true},"in_source":false}"#)
        #expect(set(false, #"{"note":",\"in_source\":true}"}"#) == #"{"note":",\"in_source\":true}","in_source":false}"#)
    }

    @Test func absentKeysAreMarkedOnceInChunksAndComeBackWithTrue() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            let changes = (0..<25).map { Change(externalID: String(format: "k%02d", $0), commitVersion: 1, record: record("r\($0)")) }
            #expect(try store.apply(changes, scope: "s", pipeline: "s", checkpoint: nil).inserted == 25)
            // Another scope's keys are never this refresh's business.
            _ = try store.apply([Change(externalID: "k03", commitVersion: 1, record: record("other"))], scope: "t",
                pipeline: "t", checkpoint: nil)
            let seen = try ScratchKeySet(parent: dir, flushEvery: 4)
            defer { seen.close() }
            for i in 0..<25 where i % 5 != 3 {
                try seen.insert(PanelStore.sourceIdentityKey(scope: "s", externalID: String(format: "k%02d", i)))
            }
            try seen.flush()
            let absent = ["k03", "k08", "k13", "k18", "k23"]

            var dry: [PanelStore.AbsentKey] = []
            let d = try store.markAbsent(scope: "s", pipeline: "s", seen: seen, dryRun: true, chunk: 4) { dry.append($0) }
            #expect(d.keys == 25 && d.absent == 5 && d.newlyMarked == 5)
            #expect(dry.map(\.externalID) == absent)
            #expect(try inSource(store, "k03") == nil, "a dry run marks nothing")

            var chunks: [Int] = []
            var found: [PanelStore.AbsentKey] = []
            let o = try store.markAbsent(scope: "s", pipeline: "s", seen: seen, dryRun: false, chunk: 4,
                afterChunk: { chunks.append($0) }) { found.append($0) }
            #expect(o == d)
            #expect(chunks == Array(1...7), "25 keys in chunks of 4")
            #expect(found.map(\.externalID) == absent && found.allSatisfy(\.newlyMarked))
            for id in absent { #expect(try inSource(store, id) == false) }
            #expect(try inSource(store, "k04") == nil)
            #expect(try inSource(store, "k03", scope: "t") == nil)
            // The version stays; the marks are update lines for the pipeline.
            #expect(try store.record(externalID: "k03", scope: "s")?.commitVersion == 1)
            let out = dir + "-out"
            defer { try? FileManager.default.removeItem(atPath: out) }
            let lines = try deliveredLines(out, try store.deliver(to: out).files).map(jsonObject)
            let marks = lines.suffix(5)
            #expect(marks.map { $0["external_id"] as? String } == absent)
            #expect(marks.allSatisfy { $0["op"] as? String == "update" && $0["commit_version"] as? Int == 1 })

            // Again: counted and listed, nothing new marked or delivered.
            let again = try store.markAbsent(scope: "s", pipeline: "s", seen: seen, dryRun: false, chunk: 100) { _ in }
            #expect(again.absent == 5 && again.newlyMarked == 0)
            #expect(try store.deliver(to: out).files.isEmpty)

            // The same row, back: an update whose record says so; the next identical row is unchanged.
            let back = [Change(externalID: "k08", commitVersion: 2, record: record("r8"))]
            #expect(try store.apply(back, scope: "s", pipeline: "s", checkpoint: nil) == .init(updated: 1))
            #expect(try inSource(store, "k08") == true)
            let returned = try deliveredLines(out, try store.deliver(to: out).files).map(jsonObject)
            #expect((returned.last?["record"] as? [String: Any])?["in_source"] as? Bool == true)
            #expect(try store.apply(back, scope: "s", pipeline: "s", checkpoint: nil) == .init(unchanged: 1))
            // A later change carries the row as the source gives it.
            _ = try store.apply([Change(externalID: "k08", commitVersion: 3, record: record("r8b"))], scope: "s",
                pipeline: "s", checkpoint: nil)
            #expect(try inSource(store, "k08") == nil)
            // An older row for a marked key is skipped, as always: it does not bring the key back.
            #expect(try store.apply([Change(externalID: "k13", commitVersion: 0, record: record("old"))], scope: "s",
                pipeline: "s", checkpoint: nil) == .init(skippedOlder: 1))
            #expect(try inSource(store, "k13") == false)
        }
    }

    @Test func aParticipantReadThroughAnotherKeyOfTheScopeIsPresent() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            _ = try store.apply([Change(externalID: "a", commitVersion: 1, record: record("a"), email: "p@x.io")],
                scope: "s", pipeline: "s", checkpoint: nil)
            #expect(try store.apply([Change(externalID: "b", commitVersion: 1, record: record("b"), email: "p@x.io")],
                scope: "s", pipeline: "s", checkpoint: nil) == .init(linked: 1))
            let onlyB = try ScratchKeySet(parent: dir)
            defer { onlyB.close() }
            try onlyB.insert(PanelStore.sourceIdentityKey(scope: "s", externalID: "b"))
            try onlyB.flush()
            let o = try store.markAbsent(scope: "s", pipeline: "s", seen: onlyB, dryRun: false) { _ in }
            #expect(o.keys == 2 && o.absent == 0)
            // Neither key read: both absent, the one record marked once.
            let none = try ScratchKeySet(parent: dir)
            defer { none.close() }
            var found: [String] = []
            let both = try store.markAbsent(scope: "s", pipeline: "s", seen: none, dryRun: false) { found.append($0.externalID) }
            #expect(both.absent == 2 && both.newlyMarked == 2 && found == ["a", "b"])
            #expect(try inSource(store, "a") == false)
            let out = dir + "-out"
            defer { try? FileManager.default.removeItem(atPath: out) }
            let lines = try deliveredLines(out, try store.deliver(to: out).files).map(jsonObject)
            #expect(lines.filter { ($0["record"] as? [String: Any])?["in_source"] as? Bool == false }.count == 1)
        }
    }

    @Test func aKeySetIsOnDiskAndLeavesNothingBehind() throws {
        try withTemporaryDirectory { dir in
            let set = try ScratchKeySet(parent: dir, flushEvery: 3)
            for i in 0..<10 { try set.insert(Array("key\(i % 7)".utf8)) }
            #expect(try set.contains(Array("key2".utf8)), "three flushes happened")
            #expect(try !set.contains(Array("key9".utf8)))
            try set.flush()
            #expect(try set.contains(Array("key6".utf8)))
            #expect(FileManager.default.fileExists(atPath: set.directory + "/data.mdb"))
            set.close()
            #expect(!FileManager.default.fileExists(atPath: set.directory))
            // One a killed refresh left behind is removed by the next.
            let stale = dir + "/" + ScratchKeySet.directoryPrefix + "x"
            try FileManager.default.createDirectory(atPath: stale, withIntermediateDirectories: true)
            ScratchKeySet.removeStale(in: dir)
            #expect(!FileManager.default.fileExists(atPath: stale))
        }
    }
}
