import CDFSyncCore
import CDFSyncStorage
import Foundation

/// The one open ``PanelStore`` of a state directory in this process.
///
/// LMDB allows one open environment per directory per process, and a writing store holds the directory's writer
/// lock. A run opens the store as the writer for its duration (so other cdfsync processes can use the directory
/// between runs, as with `cdfsync schedule`); the API's reads share the run's store while it is open, and
/// otherwise a reader store, opened at the first read and kept until a run needs the directory (the console asks
/// every few seconds; opening a store each time would read its membership filter each time) or a read fails. A run
/// waits for reads in progress to finish before it opens the writer, and reads wait while it opens.
///
/// Blocking: call from a thread that may wait (a run's thread, the NIO thread pool), never an event loop.
final class StoreSlot: @unchecked Sendable {
    // @unchecked Sendable: every mutable property is guarded by `condition`.
    let directory: String
    private let mapSize: Int
    private let condition = NSCondition()
    private var store: PanelStore?
    private var writing = false
    /// The open reader store failed a read: it is closed when its last user leaves.
    private var stale = false
    private var opening = false
    private var users = 0
    /// Runs waiting to open the writer: new reads wait for them (reads are short; a run must not starve).
    private var writersWaiting = 0

    init(directory: String, mapSize: Int) {
        self.directory = directory
        self.mapSize = mapSize
    }

    /// Opens the store as the writer (created if missing), runs `body`, and closes it.
    ///
    /// - Throws: ``StorageError/Code/inUse`` when another process holds the directory (nothing was opened).
    func withWriter<T>(_ body: (PanelStore) throws -> T) throws -> T {
        condition.lock()
        writersWaiting += 1
        while opening || writing || users > 0 { condition.wait() }
        writersWaiting -= 1
        opening = true
        // An idle reader store makes way (its environment must be closed before the writer opens one).
        store = nil
        stale = false
        condition.unlock()
        let opened: PanelStore
        do {
            opened = try Self.open { try PanelStore(directory: directory, mapSize: mapSize, access: .writer) }
        } catch {
            condition.lock()
            opening = false
            condition.broadcast()
            condition.unlock()
            throw error
        }
        condition.lock()
        store = opened
        writing = true
        opening = false
        condition.broadcast()
        condition.unlock()
        defer { close() }
        return try body(opened)
    }

    /// Runs `body` with the open store (the running writer's), or a reader opened for it; nil when no run has
    /// created a store in the directory yet.
    func withReader<T>(_ body: (PanelStore) throws -> T) throws -> T? {
        condition.lock()
        while opening || (writersWaiting > 0 && !writing) { condition.wait() }
        if store == nil {
            guard FileManager.default.fileExists(atPath: directory + "/data.mdb") else {
                condition.unlock()
                return nil
            }
            opening = true
            condition.unlock()
            do {
                let opened = try Self.open { try PanelStore(directory: directory, mapSize: mapSize, access: .reader) }
                condition.lock()
                store = opened
                opening = false
                condition.broadcast()
            } catch {
                condition.lock()
                opening = false
                condition.broadcast()
                condition.unlock()
                throw error
            }
        }
        let s = store!
        users += 1
        condition.unlock()
        var failed = true
        defer {
            condition.lock()
            users -= 1
            // A reader store stays open for the next read unless a read failed with it; a writer's stays with its run.
            if failed && !writing { stale = true }
            if users == 0 && !writing && stale {
                store = nil
                stale = false
            }
            condition.broadcast()
            condition.unlock()
        }
        let result = try body(s)
        failed = false
        return result
    }

    /// Ends the writer's use: waits for the reads sharing its store, then releases it (closing the environment and
    /// the writer lock once the last reference is gone).
    private func close() {
        condition.lock()
        while users > 0 { condition.wait() }
        store = nil
        writing = false
        condition.broadcast()
        condition.unlock()
    }

    /// Opens a store, waiting briefly while this process still closes the previous one: a run's threads may drop
    /// their last reference to it an instant after the run returned (bounded: 2 s in all).
    private static func open(_ make: () throws -> PanelStore) throws -> PanelStore {
        var attempt = 0
        while true {
            do {
                return try make()
            } catch let e as StorageError where e.code == .alreadyOpen && attempt < 200 {
                attempt += 1
                usleep(10_000)
            }
        }
    }
}
