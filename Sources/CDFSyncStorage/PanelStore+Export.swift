import CDFSyncCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension PanelStore {
    /// Counts and sizes, for status output. Read in one transaction (a consistent snapshot).
    public struct Statistics: Sendable, Equatable {
        /// Participants in the panel (all scopes).
        public var participants: Int
        /// Source keys in the identity index (at least `participants`; more when keys were linked).
        public var identities: Int
        /// Outbox lines not yet delivered.
        public var pendingOutbox: Int
        /// The last outbox sequence handed out (0 when none).
        public var outboxSequence: UInt64
        /// The delivered cursor (0 when nothing was delivered).
        public var deliveredSequence: UInt64
        /// Delivered segment files recorded.
        public var segments: Int
        /// Run records stored.
        public var runs: Int
        /// The next participant id that will be handed out.
        public var nextParticipantID: UInt64
        /// Bytes of the data file in use (last used page × page size); the map size is the upper limit.
        public var usedBytes: Int
        /// The configured map size.
        public var mapSize: Int
        /// Conflict entries recorded (see ``PanelStore/conflicts(limit:)``).
        public var conflicts: Int = 0
        /// Source keys linked to an existing participant through email or phone.
        public var linkedKeys: Int = 0
        /// Event ids recorded (all event scopes).
        public var events: Int = 0
    }

    /// Counts and sizes of the store.
    public func statistics() throws -> Statistics {
        try environment.read { txn in
            let (used, mapSize) = try environment.usage()
            return Statistics(
                participants: try txn.count(panel), identities: try txn.count(ident),
                pendingOutbox: try pendingOutboxLines(txn),
                outboxSequence: try readCounter(txn, MetaKey.outboxSequence) ?? 0,
                deliveredSequence: try readCounter(txn, MetaKey.deliveredSequence) ?? 0,
                segments: try txn.count(segments), runs: try txn.count(runsDB),
                nextParticipantID: try readCounter(txn, MetaKey.nextParticipantID) ?? 1,
                usedBytes: used, mapSize: mapSize, conflicts: try txn.count(conflictsDB),
                linkedKeys: try txn.count(links), events: try txn.count(eventsDB))
        }
    }

    /// Writes every record (of `scope`, or all scopes) as zstd-compressed NDJSON to `path`, in participant id
    /// order, one line per participant:
    /// `{"participant_id":P,"scope":"...","external_id":"...","commit_version":V,"record":{...}}`.
    ///
    /// Streams in bounded memory from one read snapshot; the file is written to `path.tmp`, fsynced and renamed,
    /// so `path` is either absent/old or complete.
    /// - Returns: the number of records written.
    @discardableResult
    public func exportRecords(scope: String?, to path: String, level: Int32 = 3) throws -> Int {
        let temp = path + ".tmp"
        let writer = try ZstdFileWriter(path: temp, level: level)
        var json = JSONWriter(reservingCapacity: 1024)
        var count = 0
        do {
            try forEachRecord(scope: scope) { r in
                json.reset()
                json.beginObject()
                json.key("participant_id")
                json.uint(r.participantID)
                json.key("scope")
                json.string(r.scope)
                json.key("external_id")
                json.string(r.externalID)
                json.key("commit_version")
                json.int(r.commitVersion)
                json.key("record")
                json.raw(r.record)
                json.endObject()
                json.bytes.append(0x0A)
                try writer.write(json.bytes)
                count += 1
            }
            try writer.finish()
        } catch {
            unlink(temp)
            throw error
        }
        if rename(temp, path) != 0 { throw StorageError.system(errno, "renaming \(temp) to", path: path) }
        try fsyncDirectory(FilePaths.parent(path) ?? ".")
        return count
    }
}
