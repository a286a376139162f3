module github.com/scalable-chat-go/bench

go 1.26.8

require github.com/jackc/pgx/v5 v5.10.0

require github.com/gorilla/websocket v1.5.3 // indirect

require (
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/scalable-chat-go/server v0.0.0
	golang.org/x/text v0.42.0 // indirect
)

replace github.com/scalable-chat-go/server => ../../server
