import CDFSyncCore
import Foundation
import Synchronization

extension PanelStore {
    /// One event row (immutable, identified by its event id).
    public struct Event: Sendable {
        /// The event's id; an event id is delivered at most once per scope, ever.
        public var eventID: String
        /// The external id of the user the event belongs to (in the `identityScope` given to ``applyEvents``).
        public var userExternalID: String?
        /// The `_commit_version` (or watermark ordinal) the row came from.
        public var commitVersion: Int64
        /// Canonical JSON object bytes of the mapped fields.
        public var record: [UInt8]

        public init(eventID: String, userExternalID: String?, commitVersion: Int64, record: [UInt8]) {
            self.eventID = eventID
            self.userExternalID = userExternalID
            self.commitVersion = commitVersion
            self.record = record
        }
    }

    /// What one ``applyEvents(_:scope:identityScope:pipeline:checkpoint:)`` did.
    ///
    /// `inserted + duplicates` equals the number of input events.
    public struct EventOutcome: Sendable, Equatable {
        /// New event ids (one outbox line each).
        public var inserted: Int
        /// Event ids seen before (in an earlier call, run, replay or full refresh, or earlier in this batch).
        public var duplicates: Int
        /// New events whose user could not be resolved (delivered with `"participant_id":null`).
        public var unresolvedUsers: Int

        public init(inserted: Int = 0, duplicates: Int = 0, unresolvedUsers: Int = 0) {
            self.inserted = inserted
            self.duplicates = duplicates
            self.unresolvedUsers = unresolvedUsers
        }
    }

    /// Applies a batch of events: each event id not seen before in `scope` is recorded (database `events`,
    /// forever) and gets one outbox line
    /// `{"seq":N,"op":"event","event_id":"...","participant_id":P|null,"scope":"...","user_external_id":"..."|null,"commit_version":V,"record":{...}}`,
    /// in one write transaction together with `checkpoint` (when given).
    ///
    /// The user is resolved through the identity index: (`identityScope`, `userExternalID`) → participant id, as
    /// of this transaction. Events are processed in input order; within the batch the first occurrence of an id
    /// wins.
    /// - Parameters:
    ///   - events: the event rows.
    ///   - scope: the event source's scope (connection + source); must not contain NUL.
    ///   - identityScope: the scope of the participant source the user ids refer to; `nil` leaves every event
    ///     unresolved.
    ///   - pipeline: whose checkpoint `checkpoint` is.
    ///   - checkpoint: written in the same transaction when not `nil`.
    /// - Throws: ``StorageError``; on any error nothing of the batch is written. `.invalidArgument` for a scope
    ///   containing NUL, an over-long key or a record that is not a JSON object.
    public func applyEvents(
        _ events: [Event], scope: String, identityScope: String?, pipeline: String, checkpoint: Checkpoint?
    ) throws -> EventOutcome {
        let scopeBytes = Array(scope.utf8)
        guard !scopeBytes.contains(0), !(identityScope?.utf8.contains(0) ?? false) else {
            throw StorageError(code: .invalidArgument, message: "scope must not contain a NUL byte")
        }
        let maxKey = environment.maxKeySize
        for e in events {
            guard scopeBytes.count + 1 + e.eventID.utf8.count <= maxKey,
                (identityScope?.utf8.count ?? 0) + 1 + (e.userExternalID?.utf8.count ?? 0) <= maxKey
            else {
                throw StorageError(code: .invalidArgument, message: "an event key in scope \(scope) is over \(maxKey) bytes")
            }
            guard e.record.first == UInt8(ascii: "{"), e.record.last == UInt8(ascii: "}") else {
                throw StorageError(code: .invalidArgument, message: "event record in scope \(scope) is not a JSON object")
            }
        }
        let checkpointBytes = try checkpoint.map { try Self.encodeCheckpoint($0) }
        var escapedScope: [UInt8] = []
        JSONWriter.appendEscaped(scope, to: &escapedScope)
        var outcome = EventOutcome()

        return try writerLock.withLock { _ in
            try ensureFilterCapacity(adding: 0)
            try environment.write { txn in
                try checkSoleWriter(txn)
                var framer = try OutboxFramer(store: self, txn: txn)
                var seq = framer.startSeq
                var lines: [UInt8] = []
                for e in events {
                    var key = scopeBytes
                    key.append(0)
                    key.append(contentsOf: e.eventID.utf8)
                    let seen = try key.withUnsafeBytes { k in try txn.withValue(eventsDB, key: k) { $0 != nil } }
                    if seen {
                        outcome.duplicates += 1
                        continue
                    }
                    var pid: UInt64?
                    if let identityScope, let user = e.userExternalID {
                        let identKey = Self.identityKey(scope: identityScope, externalID: user)
                        if filter.mayContain(.ident, identKey) {
                            pid = try identKey.withUnsafeBytes { k in
                                try txn.withValue(ident, key: k) { v in v.flatMap { IdentValue($0)?.pid } }
                            }
                        }
                    }
                    if pid == nil { outcome.unresolvedUsers += 1 }
                    try key.withUnsafeBytes { k in try withBE(pid ?? 0) { try txn.put(eventsDB, key: k, value: $0) } }
                    seq += 1
                    appendEventLine(
                        into: &lines, seq: seq, eventID: e.eventID, participantID: pid, escapedScope: escapedScope,
                        userExternalID: e.userExternalID, commitVersion: e.commitVersion, record: e.record)
                    lines.append(0x0A)
                    outcome.inserted += 1
                }
                lines.withUnsafeBytes { framer.appendLines($0, lastSeq: seq) }
                let startSeq = framer.startSeq
                try framer.finish(txn)
                try recordRoute(txn, after: startSeq, through: seq, pipeline: pipeline)
                if let checkpointBytes {
                    try txn.put(meta, key: MetaKey.checkpoint(pipeline), value: checkpointBytes)
                }
            }
            return outcome
        }
    }

    /// Whether `eventID` was recorded in `scope`, and the participant it resolved to (0 when unresolved).
    public func event(eventID: String, scope: String) throws -> UInt64? {
        let key = Self.identityKey(scope: scope, externalID: eventID)
        return try environment.read { txn in
            try txn.withValue(eventsDB, key: key) { v in v.flatMap { $0.count == 8 ? loadBE($0) : nil } }
        }
    }
}

/// Appends one event outbox line (no newline), field order as documented on ``PanelStore/applyEvents``.
func appendEventLine(
    into out: inout [UInt8], seq: UInt64, eventID: String, participantID: UInt64?, escapedScope: [UInt8],
    userExternalID: String?, commitVersion: Int64, record: [UInt8]
) {
    out.append(OutboxLiterals.seq)
    appendDecimal(seq, to: &out)
    out.append(#","op":"event","event_id":"# as StaticString)
    JSONWriter.appendEscaped(eventID, to: &out)
    out.append(#","participant_id":"# as StaticString)
    if let participantID { appendDecimal(participantID, to: &out) } else { out.append("null" as StaticString) }
    out.append(OutboxLiterals.scope)
    out.append(contentsOf: escapedScope)
    out.append(#","user_external_id":"# as StaticString)
    if let userExternalID { JSONWriter.appendEscaped(userExternalID, to: &out) } else { out.append("null" as StaticString) }
    out.append(OutboxLiterals.commitVersion)
    if commitVersion < 0 {
        out.append(UInt8(ascii: "-"))
        appendDecimal(commitVersion.magnitude, to: &out)
    } else {
        appendDecimal(UInt64(commitVersion), to: &out)
    }
    out.append(OutboxLiterals.record)
    out.append(contentsOf: record)
    out.append(UInt8(ascii: "}"))
}
