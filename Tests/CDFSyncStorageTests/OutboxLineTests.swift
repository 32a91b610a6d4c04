import CDFSyncCore
import Testing

@testable import CDFSyncStorage

@Suite struct OutboxLineTests {
    /// The hand-built outbox line must be byte-identical to what JSONWriter produces for the same object.
    @Test(arguments: [
        (UInt64(1), true, UInt64(1), "c1/src", "plain", Int64(0)),
        (UInt64(987_654_321_012), false, UInt64.max, "quo\"te\\slash", "tab\tnew\nline\u{1}", Int64.min),
        (UInt64(10), true, UInt64(100), "ünïcødé", "日本語-id", Int64(-42)),
        (UInt64(0), false, UInt64(9), "", "", Int64.max),
    ])
    func matchesJSONWriter(
        seq: UInt64, insert: Bool, pid: UInt64, scope: String, externalID: String, version: Int64
    ) {
        let record = Array(#"{"a":1,"b":"x"}"#.utf8)
        var writer = JSONWriter()
        writer.beginObject()
        writer.key("seq")
        writer.uint(seq)
        writer.key("op")
        writer.string(insert ? "insert" : "update")
        writer.key("participant_id")
        writer.uint(pid)
        writer.key("scope")
        writer.string(scope)
        writer.key("external_id")
        writer.string(externalID)
        writer.key("commit_version")
        writer.int(version)
        writer.key("record")
        writer.raw(record)
        writer.endObject()

        var escapedScope: [UInt8] = []
        JSONWriter.appendEscaped(scope, to: &escapedScope)
        var line: [UInt8] = []
        Array(externalID.utf8).withUnsafeBytes { ext in
            record.withUnsafeBytes { rec in
                appendOutboxLine(
                    into: &line, seq: seq, insert: insert, participantID: pid, escapedScope: escapedScope,
                    externalID: ext, commitVersion: version, record: rec)
            }
        }
        #expect(String(decoding: line, as: UTF8.self) == String(decoding: writer.bytes, as: UTF8.self))
    }
}
