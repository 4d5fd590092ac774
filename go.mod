module github.com/udp-discovery-bridge/bridge

go 1.26.8

require github.com/fernet/fernet-go v0.0.0-20240119011108-303da6aec611
