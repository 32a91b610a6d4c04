import Foundation
import Testing

@testable import CDFSyncStorage

@Suite struct LMDBTests {
    struct Boom: Error {}

    @Test func putGetAndOrderedIterationWithRangeStart() throws {
        try withTemporaryDirectory { dir in
            let env = try LMDBEnvironment(directory: dir)
            let db = try env.openDatabases(["t"])[0]
            try env.write { txn in
                for k in ["b", "d", "a", "c", "e"] { try txn.put(db, key: bytes(k), value: bytes(k.uppercased())) }
            }
            try env.read { txn in
                #expect(try txn.get(db, key: bytes("c")) == bytes("C"))
                #expect(try txn.get(db, key: bytes("z")) == nil)
                #expect(try txn.count(db) == 5)
                var seen: [String] = []
                try txn.forEach(db) { k, _ in
                    seen.append(String(decoding: k, as: UTF8.self))
                    return true
                }
                #expect(seen == ["a", "b", "c", "d", "e"])
                seen = []
                try txn.forEach(db, from: bytes("bb")) { k, _ in
                    seen.append(String(decoding: k, as: UTF8.self))
                    return seen.count < 2
                }
                #expect(seen == ["c", "d"])
                seen = []
                try txn.forEach(db, from: bytes("c"), reverse: true) { k, _ in
                    seen.append(String(decoding: k, as: UTF8.self))
                    return true
                }
                #expect(seen == ["c", "b", "a"])
                #expect(try txn.last(db)?.key == bytes("e"))
            }
            let (first, second, ranged) = try env.write { txn in
                (try txn.delete(db, key: bytes("a")), try txn.delete(db, key: bytes("a")),
                 try txn.deleteRange(db, from: bytes("b"), upTo: bytes("d")))
            }
            #expect(first && !second && ranged == 2)
            #expect(try env.read { try $0.count(db) } == 2)
        }
    }

    @Test func appendRejectsOutOfOrderKey() throws {
        try withTemporaryDirectory { dir in
            let env = try LMDBEnvironment(directory: dir)
            let db = try env.openDatabases(["t"])[0]
            try env.write { txn in
                try txn.put(db, key: bytes("m"), value: [1], flags: .append)
                try txn.put(db, key: bytes("n"), value: [2], flags: .append)
            }
            let error = try #require(throws: StorageError.self) {
                try env.write { txn in try txn.put(db, key: bytes("a"), value: [3], flags: .append) }
            }
            #expect(error.code == .keyExists)
        }
    }

    @Test func throwingWriteBodyLeavesNoTrace() throws {
        try withTemporaryDirectory { dir in
            let env = try LMDBEnvironment(directory: dir)
            let db = try env.openDatabases(["t"])[0]
            try env.write { try $0.put(db, key: bytes("keep"), value: [1]) }
            #expect(throws: Boom.self) {
                try env.write { txn in
                    try txn.put(db, key: bytes("gone"), value: [2])
                    try txn.put(db, key: bytes("keep"), value: [9])
                    throw Boom()
                }
            }
            try env.read { txn throws in
                #expect(try txn.get(db, key: bytes("gone")) == nil)
                #expect(try txn.get(db, key: bytes("keep")) == [1])
            }
        }
    }

    @Test func dataPersistsAcrossReopen() throws {
        try withTemporaryDirectory { dir in
            do {
                let env = try LMDBEnvironment(directory: dir)
                let db = try env.openDatabases(["t"])[0]
                try env.write { try $0.put(db, key: bytes("k"), value: bytes("v")) }
            }
            let env = try LMDBEnvironment(directory: dir)
            let db = try env.openDatabases(["t"], create: false)[0]
            #expect(try env.read { try $0.get(db, key: bytes("k")) } == bytes("v"))
        }
    }

    @Test func secondOpenInSameProcessIsRefused() throws {
        try withTemporaryDirectory { dir in
            let env = try LMDBEnvironment(directory: dir)
            let error = try #require(throws: StorageError.self) { try LMDBEnvironment(directory: dir + "/.") }
            #expect(error.code == .alreadyOpen)
            withExtendedLifetime(env) {}
        }
    }

    @Test func tinyMapReportsMapFull() throws {
        try withTemporaryDirectory { dir in
            let env = try LMDBEnvironment(directory: dir, mapSize: 64 << 10)
            let db = try env.openDatabases(["t"])[0]
            let value = [UInt8](repeating: 7, count: 1000)
            let error = try #require(throws: StorageError.self) {
                try env.write { txn in
                    for i in 0..<1000 { try txn.put(db, key: bytes("key-\(i)"), value: value) }
                }
            }
            #expect(error.code == .mapFull)
            #expect(error.message.contains(dir))
            #expect(error.message.contains("map size"))
            // The catch pattern against the raw LMDB code works too.
            var matched = false
            do { throw error } catch LMDBResultCode.MDB_MAP_FULL { matched = true } catch {}
            #expect(matched)
            // The aborted transaction left nothing behind, and the environment is still usable.
            #expect(try env.read { try $0.count(db) } == 0)
            try env.write { try $0.put(db, key: bytes("small"), value: [1]) }
            #expect(try env.read { try $0.count(db) } == 1)
        }
    }

    @Test func exhaustedReaderSlotsReportReadersFull() throws {
        try withTemporaryDirectory { dir in
            let env = try LMDBEnvironment(directory: dir, maxReaders: 1)
            let db = try env.openDatabases(["t"])[0]
            let error = try #require(throws: StorageError.self) {
                try env.read { _ in try env.read { try $0.count(db) } }
            }
            #expect(error.code == .readersFull)
            #expect(error.message.contains(dir))
            // The slot is free again once the outer reader ends.
            #expect(try env.read { try $0.count(db) } == 0)
        }
    }

    @Test func impossibleMapSizeSaysToLowerIt() throws {
        try withTemporaryDirectory { dir in
            let error = try #require(throws: StorageError.self) { try LMDBEnvironment(directory: dir, mapSize: 1 << 60) }
            #expect(error.message.contains("mapSize"))
            #expect(error.message.contains(dir))
            // The failed open released the directory: a sane open works.
            _ = try LMDBEnvironment(directory: dir, mapSize: 1 << 20)
        }
    }

    @Test func garbageDataFileIsReportedAsCorrupted() throws {
        try withTemporaryDirectory { dir in
            let garbage = Data(repeating: 0x5A, count: 64 << 10)
            try garbage.write(to: URL(fileURLWithPath: dir + "/data.mdb"))
            let error = try #require(throws: StorageError.self) { try LMDBEnvironment(directory: dir) }
            #expect(error.code == .corrupted)
            #expect(error.message.contains(dir))
        }
    }

    @Test func directoryBlockedByAFileNamesThePath() throws {
        try withTemporaryDirectory { dir in
            let file = dir + "/plain-file"
            try Data([1]).write(to: URL(fileURLWithPath: file))
            let error = try #require(throws: StorageError.self) { try LMDBEnvironment(directory: file + "/env") }
            #expect(error.message.contains(file))
        }
    }

    @Test(.enabled(if: getuid() != 0, "root bypasses permission bits"))
    func unwritableDirectoryIsPermissionDenied() throws {
        try withTemporaryDirectory { dir in
            let locked = dir + "/locked"
            try FileManager.default.createDirectory(atPath: locked, withIntermediateDirectories: false)
            chmod(locked, 0o500)
            defer { chmod(locked, 0o700) }
            let error = try #require(throws: StorageError.self) { try LMDBEnvironment(directory: locked + "/env") }
            #expect(error.code == .permissionDenied)
            #expect(error.message.contains(locked))
        }
    }
}
