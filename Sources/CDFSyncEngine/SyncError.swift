import CDFSyncClient

/// Errors the engine raises itself (the client's `DatabricksError`s pass through unchanged).
public struct SyncError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var remedy: String

    public init(_ message: String, remedy: String) {
        self.message = message
        self.remedy = remedy
    }

    public var description: String { "\(message) — \(remedy)" }

    static func column(_ name: String, table: String, statementID: String, available: [String]) -> SyncError {
        SyncError("column '\(name)' is not in the result of statement \(statementID) on \(table) (columns: \(available.joined(separator: ", ")))",
            remedy: "Fix the column name in the mapping, or check whether the column was renamed or dropped.")
    }
}
