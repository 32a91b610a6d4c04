print("cdfsync")
