import CDFSyncCore

extension PanelStore {
    static let connectionPrefix = "connection/"

    /// Records that pipeline `pipeline` reaches its warehouse through the saved connection `connection` (meta
    /// `connection/<pipeline>`), or, with `nil`, that it uses no saved connection (its settings are inline).
    /// `cdfsync connection list` counts pipelines per connection from this; `connection remove` names them.
    /// Written only when it changes.
    public func recordConnection(_ connection: String?, pipeline: String) throws {
        let key = Array((Self.connectionPrefix + pipeline).utf8)
        let stored = try environment.read { try $0.get(meta, key: key) }
        let wanted = connection.map { Array($0.utf8) }
        guard stored != wanted else { return }
        try environment.write { txn in
            if let wanted {
                try txn.put(meta, key: key, value: wanted)
            } else {
                _ = try txn.delete(meta, key: key)
            }
        }
    }

    /// Every pipeline of this store that uses a saved connection, with that connection's name, by pipeline name.
    public func pipelineConnections() throws -> [(pipeline: String, connection: String)] {
        let prefix = Array(Self.connectionPrefix.utf8)
        var out: [(pipeline: String, connection: String)] = []
        try environment.read { txn in
            try txn.forEach(meta, from: prefix) { k, v in
                guard k.starts(with: prefix) else { return false }
                out.append((String(decoding: k[prefix.count...], as: UTF8.self), String(decoding: v, as: UTF8.self)))
                return true
            }
        }
        return out
    }
}
