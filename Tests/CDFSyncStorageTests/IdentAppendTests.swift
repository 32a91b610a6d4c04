import Foundation
import Testing

import CDFSyncCore
@testable import CDFSyncStorage

/// Identity keys that sort after every key in `ident` are appended without a probe (a first load in key order);
/// the rest take the ordinary path. Both must give the same store.
@Suite struct IdentAppendTests {
    /// Where the appendable keys of a sorted batch begin, against the last key in `ident`, including scopes that
    /// are prefixes of one another and ids that are prefixes of one another.
    @Test func firstKeyAfterTheLastIdentityKey() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir, durable: false)
            func position(_ scope: String, _ ids: [String]) throws -> Int {
                let scopeBytes = Array(scope.utf8)
                let idBytes = ids.map { Array($0.utf8) }
                return try store.environment.write { txn in
                    let w = try IdentityResolver(store: store, txn: txn)
                    return try w.firstKeyAfterIdent(count: ids.count) { i in
                        (scopeBytes, idBytes[i].withUnsafeBytes { UnsafeRawBufferPointer($0) })
                    }
                }
            }
            // Empty store: everything appends.
            #expect(try position("s", ["a", "b"]) == 0)
            _ = try store.apply(
                ["k10", "k12", "k14"].map { Change(externalID: $0, commitVersion: 1, record: record($0)) },
                scope: "s", pipeline: "p", checkpoint: nil)
            // Last key: "s\0k14".
            #expect(try position("s", ["k05", "k14", "k140", "k15", "k2"]) == 2)  // "k140" > "k14" (longer)
            #expect(try position("s", ["k01", "k13"]) == 2)
            #expect(try position("s", []) == 0)
            #expect(try position("r", ["zzz"]) == 1)  // scope "r" sorts before "s"
            #expect(try position("t", ["0"]) == 0)  // scope "t" after
            #expect(try position("s2", ["0"]) == 0)  // "s2..." > "s\0..."
            #expect(try position("", ["x"]) == 1)  // "\0x" < "s..."
            _ = try store.apply([Change(externalID: "a", commitVersion: 1, record: record("a"))], scope: "s2",
                pipeline: "p", checkpoint: nil)
            // Last key: "s2\0a"; scope "s" is a prefix of it and sorts before.
            #expect(try position("s", ["zz"]) == 1)
            #expect(try position("s2", ["a", "b"]) == 1)
        }
    }

    /// A batch mixing keys below the last stored key (new and existing) with keys after it, in several scopes,
    /// applies like the same rows one by one, and a second apply finds every key.
    @Test func mixedBatchesApplyLikeOneByOne() throws {
        try withTemporaryDirectory { dir in
            let batched = try PanelStore(directory: dir + "/a", durable: false)
            let single = try PanelStore(directory: dir + "/b", durable: false)
            var rng = SplitMix(11)
            var expectedCount = 0
            for round in 0..<6 {
                // Ids from a range that moves up each round, so each batch has keys below, among and after
                // the stored ones.
                let changes = (0..<300).map { _ -> Change in
                    let n = Int(rng.next() % 400) + round * 150
                    let id = String(format: "id-%06d", n)
                    return Change(externalID: id, commitVersion: Int64(round + 1), record: record(id, round))
                }
                for scope in ["s", "s2", "r"] {
                    let got = try batched.apply(changes, scope: scope, pipeline: "p", checkpoint: nil)
                    var sum = PanelStore.ApplyOutcome()
                    for c in changes {
                        let o = try single.apply([c], scope: scope, pipeline: "p", checkpoint: nil)
                        sum += o
                    }
                    #expect(got == sum, "round \(round) scope \(scope)")
                    #expect(got.rows == changes.count)
                    expectedCount += got.inserted
                    // Applying the batch again finds every key: nothing new.
                    let again = try batched.apply(changes, scope: scope, pipeline: "p", checkpoint: nil)
                    #expect(again.inserted == 0 && again.updated == 0, "round \(round) scope \(scope)")
                }
            }
            #expect(try batched.count() == expectedCount)
            #expect(try single.count() == expectedCount)
            for scope in ["s", "s2", "r"] {
                for n in stride(from: 0, to: 1_200, by: 7) {
                    let id = String(format: "id-%06d", n)
                    #expect(try batched.record(externalID: id, scope: scope)?.record == single.record(externalID: id, scope: scope)?.record)
                }
            }
        }
    }
}
