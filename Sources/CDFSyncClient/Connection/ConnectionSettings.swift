import Foundation

/// How cdfsync authenticates to a workspace.
public enum Authentication: Sendable, CustomStringConvertible {
    /// A personal access token (`dapi...`).
    case personalAccessToken(Secret)
    /// OAuth machine-to-machine for a service principal: `client_credentials` at `/oidc/v1/token`.
    case oauthM2M(clientID: String, clientSecret: Secret, scope: String = "all-apis")

    public var description: String {
        switch self {
        case .personalAccessToken: "personal access token"
        case .oauthM2M(let id, _, _): "OAuth M2M (client \(id))"
        }
    }
}

/// Everything needed to reach one SQL warehouse.
public struct ConnectionSettings: Sendable {
    /// `scheme://host[:port]`, no trailing slash.
    public var baseURL: String
    public var warehouseID: String
    public var authentication: Authentication
    public var catalog: String?
    public var schema: String?
    public var transport: TransportOptions

    public init(
        host: String,
        warehouseID: String,
        authentication: Authentication,
        catalog: String? = nil,
        schema: String? = nil,
        transport: TransportOptions = TransportOptions()
    ) throws {
        self.baseURL = try Self.normalizeHost(host)
        guard Self.isValidWarehouseID(warehouseID) else {
            throw DatabricksError(
                .configuration,
                "warehouse id '\(warehouseID)' is not valid",
                remedy: "Copy the id from the warehouse's Connection details (16 hex characters), or pass --http-path /sql/1.0/warehouses/<id>.")
        }
        self.warehouseID = warehouseID
        self.authentication = authentication
        self.catalog = catalog
        self.schema = schema
        self.transport = transport
    }

    /// The host name without scheme or port, for messages.
    public var hostName: String { (try? ParsedURL(baseURL))?.host ?? baseURL }

    /// Accepts `host`, `host:port`, `https://host[:port][/]`, and `http://` only for loopback (127.0.0.0/8, `::1`,
    /// `localhost`), as libcurl parses the URL (``ParsedURL``); user info (`user@host`) is refused.
    public static func normalizeHost(_ raw: String) throws -> String {
        var text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        if !text.contains("://") { text = "https://" + text }
        let url: ParsedURL
        do {
            url = try ParsedURL(text)
        } catch {
            if text.hasSuffix("://") {
                throw DatabricksError(.configuration, "no workspace host given",
                    remedy: "Pass --host or set DATABRICKS_HOST to the workspace URL, e.g. "
                        + "https://dbc-1234.cloud.databricks.com.")
            }
            throw DatabricksError(.configuration,
                "the workspace host is not a host name or https URL: \(error.message)",
                remedy: "Give only the workspace URL, e.g. https://dbc-1234.cloud.databricks.com (no path).")
        }
        guard url.path == "/" || url.path.isEmpty, url.query == nil else {
            throw DatabricksError(.configuration, "the workspace host \(url.host) is given with a path or query",
                remedy: "Give only the workspace URL, e.g. https://dbc-1234.cloud.databricks.com (no path).")
        }
        do {
            try url.requireSecure()
        } catch {
            throw DatabricksError(.configuration, "workspace host: \(error.message)",
                remedy: url.hasUserInfo
                    ? "Give the workspace URL without user info; the token comes from --token-env or a saved "
                        + "connection."
                    : "Use https://; plain http is only allowed for a loopback simulator (127.0.0.1, ::1, localhost).")
        }
        let port = url.port.map { ":\($0)" } ?? ""
        return "\(url.scheme)://\(url.host)\(port)"
    }

    /// Whether `host` (as libcurl gives it: IPv6 in brackets) is this machine: 127.0.0.0/8, `::1` or exactly
    /// `localhost`.
    public static func isLoopback(_ host: String) -> Bool { ParsedURL.isLoopback(host: host) }

    /// Extracts the id from an HTTP path such as `/sql/1.0/warehouses/8a1c2f3d4e5b6a70`.
    public static func warehouseID(fromHTTPPath path: String) throws -> String {
        let parts = path.split(separator: "/").map(String.init)
        if parts.count >= 2, parts[parts.count - 2] == "warehouses" || parts[parts.count - 2] == "endpoints",
            isValidWarehouseID(parts[parts.count - 1])
        {
            return parts[parts.count - 1]
        }
        throw DatabricksError(.configuration, "HTTP path '\(path)' does not name a SQL warehouse",
            remedy: "Use the warehouse's HTTP path, of the form /sql/1.0/warehouses/<id>.")
    }

    static func isValidWarehouseID(_ id: String) -> Bool {
        !id.isEmpty && id.count <= 64 && id.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || b == 0x2D || b == 0x5F
        }
    }
}
