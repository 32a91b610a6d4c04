import Foundation
import Testing

@testable import CDFSyncStorage

/// The state directory's writer lock: one writing store at a time; readers take none; the holder is named.
@Suite("Writer lock")
struct WriterLockTests {
    @Test func aSecondWriterIsRefusedNamingTheHolderUntilTheFirstIsReleased() throws {
        try withTemporaryDirectory { dir in
            var first: WriterLock? = try WriterLock(directory: dir, command: "cdfsync sync")
            let holder = try #require(WriterLock.holder(of: dir))
            #expect(holder.pid == getpid())
            #expect(holder.command == "cdfsync sync")
            #expect(holder.since != nil)

            let error = try #require(throws: StorageError.self) { try WriterLock(directory: dir, command: "other") }
            #expect(error.code == .inUse)
            #expect(error.message.contains(dir) && error.message.contains("pid \(getpid())"), "\(error.message)")
            #expect(error.message.contains("`cdfsync sync`"), "\(error.message)")

            withExtendedLifetime(first) {}
            first = nil
            #expect(WriterLock.holder(of: dir) == nil, "released with the object")
            let second = try WriterLock(directory: dir, command: "cdfsync replay")
            #expect(WriterLock.holder(of: dir)?.command == "cdfsync replay", "the new holder replaces the old text")
            withExtendedLifetime(second) {}
        }
    }

    @Test func aWritingStoreHoldsTheLockAndAReaderTakesNone() throws {
        try withTemporaryDirectory { dir in
            do {
                let store = try PanelStore(directory: dir)
                #expect(WriterLock.holder(of: dir)?.pid == getpid())
                let error = try #require(throws: StorageError.self) { try PanelStore(directory: dir) }
                #expect(error.code == .inUse, "refused at the lock, before LMDB is opened twice")
                withExtendedLifetime(store) {}
            }
            #expect(WriterLock.holder(of: dir) == nil, "released when the store is")
            let reader = try PanelStore(directory: dir, access: .reader)
            #expect(WriterLock.holder(of: dir) == nil)
            withExtendedLifetime(reader) {}
        }
    }

    @Test func aLockHeldByAnotherProcessIsRefusedAndFreedWhenItIsKilled() throws {
        try withTemporaryDirectory { dir in
            // util-linux flock(1) takes the same kind of lock (flock(2)) on the same file in another process, which
            // then becomes `sleep` (same pid, same descriptor): killing it is killing the holder.
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/bash")
            p.arguments = ["-c", "exec 9>>\"$0\" && flock 9 && exec sleep 60", dir + "/" + WriterLock.fileName]
            try p.run()
            defer { if p.isRunning { p.terminate() } }
            let deadline = Date().addingTimeInterval(10)
            while WriterLock.holder(of: dir) == nil && Date() < deadline { usleep(20_000) }
            #expect(WriterLock.holder(of: dir) != nil)
            let error = try #require(throws: StorageError.self) { try PanelStore(directory: dir) }
            #expect(error.code == .inUse)
            #expect(error.message.contains("another process"), "\(error.message)")
            #expect(error.message.contains("another --state-dir"), "\(error.message)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/data.mdb"), "nothing was opened")

            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            let store = try PanelStore(directory: dir)
            #expect(WriterLock.holder(of: dir)?.pid == getpid(), "a killed holder leaves no stale lock")
            withExtendedLifetime(store) {}
        }
    }
}
