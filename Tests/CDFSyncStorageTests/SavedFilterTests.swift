import Foundation
import Testing

import CDFSyncCore
import CDFSyncTestSupport

@testable import CDFSyncStorage

/// The membership filter saved next to the store (`membership.filter`) lets an open skip the index scan, but
/// only while it describes the store exactly: a filter missing a key would make that key look new and give an
/// existing participant a second id.
@Suite("Saved membership filter")
struct SavedFilterTests {
    typealias Change = PanelStore.Change

    func changes(_ ids: [String], version: Int64, email: Bool = true) -> [Change] {
        ids.map { Change(externalID: $0, commitVersion: version, record: record($0, Int(version)),
                         email: email ? "\($0)@example.com" : nil) }
    }

    @Test func aSavedFilterIsLoadedOnTheNextOpenAndKnowsEveryKey() throws {
        try withTemporaryDirectory { dir in
            do {
                let store = try PanelStore(directory: dir)
                #expect(!store.filterWasLoaded, "a new store has nothing saved")
                _ = try store.apply(changes((0..<500).map { "k\($0)" }, version: 1), scope: "s", pipeline: "p", checkpoint: nil)
                #expect(store.saveFilter())
            }
            let store = try PanelStore(directory: dir)
            #expect(store.filterWasLoaded)
            for i in 0..<500 { #expect(store.filter.mayContain(.ident, Array("s\u{0}k\(i)".utf8))) }
            // Keys it holds are updates, not new participants.
            let outcome = try store.apply(changes(["k1", "k2", "new"], version: 2), scope: "s", pipeline: "p", checkpoint: nil)
            #expect(outcome.inserted == 1 && outcome.updated == 2)
            #expect(try store.participantID(externalID: "k1", scope: "s") == 2)
        }
    }

    @Test func aFirstLoadSizesTheFilterOnceAndALaterOneLeavesItAlone() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            let initial = store.filter.capacity
            // An empty store is sized for the whole result up front (no rebuild — a scan of every key — later).
            try store.reserveFilterCapacity(forKeys: 4 * initial)
            #expect(store.filter.capacity >= 5 * initial)
            let sized = store.filter
            let ids = (0..<2_000).map { "k\($0)" }
            _ = try store.apply(changes(ids, version: 1), scope: "s", pipeline: "p", checkpoint: nil)
            #expect(store.filter === sized, "no rebuild while the load fits")
            // With keys stored, a result's size says nothing about new keys: nothing changes.
            try store.reserveFilterCapacity(forKeys: 100 * initial)
            #expect(store.filter === sized)
            for id in ids { #expect(store.filter.mayContain(.ident, Array("s\u{0}\(id)".utf8))) }
            let again = try store.apply(changes(ids, version: 2), scope: "s", pipeline: "p", checkpoint: nil)
            #expect(again.inserted == 0 && again.updated == 2_000)
        }
    }

    @Test func aCommitAfterTheSaveMakesTheNextOpenScanInstead() throws {
        try withTemporaryDirectory { dir in
            do {
                let store = try PanelStore(directory: dir)
                _ = try store.apply(changes(["a", "b"], version: 1), scope: "s", pipeline: "p", checkpoint: nil)
                #expect(store.saveFilter())
                // Written after the save: the saved file no longer describes the store.
                _ = try store.apply(changes(["late"], version: 2), scope: "s", pipeline: "p", checkpoint: nil)
            }
            let store = try PanelStore(directory: dir)
            #expect(!store.filterWasLoaded)
            let outcome = try store.apply(changes(["late"], version: 3), scope: "s", pipeline: "p", checkpoint: nil)
            #expect(outcome.inserted == 0 && outcome.updated == 1, "the key written after the save is found")
        }
    }

    @Test(arguments: ["flip a bit", "truncate", "empty", "another store's"])
    func aDamagedOrForeignFileIsIgnored(damage: String) throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/membership.filter"
            do {
                let store = try PanelStore(directory: dir)
                _ = try store.apply(changes(["a"], version: 1), scope: "s", pipeline: "p", checkpoint: nil)
                #expect(store.saveFilter())
            }
            var data = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
            switch damage {
            case "flip a bit": data[100] ^= 0x10
            case "truncate": data.removeLast(64)
            case "empty": data = []
            default:
                // A valid file saved by a store at another transaction id.
                try withTemporaryDirectory { other in
                    let o = try PanelStore(directory: other)
                    _ = try o.apply(changes(["x", "y", "z"], version: 1), scope: "s", pipeline: "p", checkpoint: nil)
                    _ = try o.apply(changes(["w"], version: 2), scope: "s", pipeline: "p", checkpoint: nil)
                    #expect(o.saveFilter())
                    data = try Array(Data(contentsOf: URL(fileURLWithPath: other + "/membership.filter")))
                }
            }
            try Data(data).write(to: URL(fileURLWithPath: path))
            let store = try PanelStore(directory: dir)
            #expect(!store.filterWasLoaded)
            #expect(try store.apply(changes(["a"], version: 2), scope: "s", pipeline: "p", checkpoint: nil).updated == 1)
        }
    }

    /// A key another process wrote while this store was open is not in this process's filter: the next apply
    /// must notice (the commit chain is broken) and rebuild, or "other" would get a second participant id.
    ///
    /// The other process is `cdfsync-test-child write-a-key-as-reader` (Tests/cdfsync-test-child): it writes the one
    /// new key "other" into the store this test holds open. A writer is refused by the state directory's writer
    /// lock (the child checks that it is); the child gets past it by opening as a reader, as a process on a file
    /// system that does not share `flock` locks would, so that the guard behind the lock is what is tested.
    @Test func aKeyWrittenByAnotherProcessIsFoundNotDuplicated() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            _ = try store.apply(changes(["a"], version: 1), scope: "s", pipeline: "p", checkpoint: nil)
            #expect(store.saveFilter())

            let child = try TestChild.process(.writeAKeyAsReader, directory: dir)
            try child.run()
            child.waitUntilExit()
            try #require(child.terminationStatus == 0)
            let otherID = try #require(try store.participantID(externalID: "other", scope: "s"))

            #expect(!store.saveFilter(), "the filter no longer describes the store")
            let outcome = try store.apply(changes(["other", "b"], version: 2), scope: "s", pipeline: "p", checkpoint: nil)
            #expect(outcome.inserted == 1 && outcome.updated == 1, "other is an update of the child's participant")
            #expect(try store.participantID(externalID: "other", scope: "s") == otherID)
            #expect(store.saveFilter(), "rebuilt: the chain is whole again")
        }
    }

    @Test func roundTripKeepsEveryBitAndTheCount() throws {
        let f = MembershipFilter(capacity: 10_000)
        for i in 0..<3_000 { f.insert(.email, Array("e\(i)".utf8)) }
        let bytes = f.serialized(transactionID: 42)
        let g = try #require(MembershipFilter.deserialize(bytes, transactionID: 42))
        #expect(g.words == f.words && g.count == f.count && g.capacity == f.capacity)
        #expect(MembershipFilter.deserialize(bytes, transactionID: 43) == nil, "another transaction's filter")
    }

    /// The file written straight from the filter's storage is byte for byte the serialized form, and reads
    /// back into the same filter; a file of another transaction, a shorter one or a flipped bit reads as nothing.
    @Test(arguments: [1, 3_000, 200_000])
    func fileIsTheSerializedFormAndReadsBack(keys: Int) throws {
        try withTemporaryDirectory { dir in
            let f = MembershipFilter(capacity: max(keys, 1_000))
            for i in 0..<keys { f.insert(.ident, Array("s\u{0}k\(i)".utf8)) }
            let path = dir + "/f"
            #expect(f.write(toFile: path, transactionID: 7))
            let file = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            #expect(file == f.serialized(transactionID: 7))
            let g = try #require(MembershipFilter.read(fromFile: path, transactionID: 7))
            #expect(g.words == f.words && g.count == f.count && g.capacity == f.capacity)
            #expect(MembershipFilter.read(fromFile: path, transactionID: 8) == nil)
            #expect(MembershipFilter.read(fromFile: dir + "/missing", transactionID: 7) == nil)
            for damage in [file.count / 2, file.count - 3, 20] {
                var bad = file
                bad[damage] ^= 0x10
                try Data(bad).write(to: URL(fileURLWithPath: path))
                #expect(MembershipFilter.read(fromFile: path, transactionID: 7) == nil, "bit flipped at \(damage)")
            }
            try Data(file.dropLast(64)).write(to: URL(fileURLWithPath: path))
            #expect(MembershipFilter.read(fromFile: path, transactionID: 7) == nil, "truncated")
        }
    }

    /// Pieces of a multiple of 8 bytes, then the total length, hash like one combine of the whole buffer.
    @Test func hashInPiecesEqualsHashOfTheWhole() {
        var rng = SplitMix(5)
        for words in [0, 1, 4, 9, 100] {
            let bytes = (0..<(words * 8)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            var whole = StableHash()
            bytes.withUnsafeBytes { whole.combine($0) }
            for cut in Set([0, words / 2, words].map { $0 * 8 }) {
                var pieces = StableHash()
                bytes.withUnsafeBytes { b in
                    pieces.combinePiece(UnsafeRawBufferPointer(rebasing: b[0..<cut]))
                    pieces.combinePiece(UnsafeRawBufferPointer(rebasing: b[cut...]))
                }
                pieces.endPieces(totalCount: bytes.count)
                #expect(pieces.value == whole.value, "\(words) words cut at \(cut)")
            }
        }
    }
}
