// Command oidcop runs the zitadel/oidc example OpenID Provider (the
// library's own example/server, unchanged: its clients, users, login form
// and token endpoints) on a loopback address only.
//
// The example's own main listens on ":PORT", every interface; the demo and
// the end-to-end tests must not expose a provider with well-known
// passwords, so this main does what the example's does but binds
// 127.0.0.1. Environment, as the example: PORT (default 9998; the issuer is
// http://localhost:PORT/), REDIRECT_URI (comma-separated, registered for
// the clients web, api and native), USERS_FILE (optional JSON user store).
//
// It is its own Go module so that the provider's dependencies stay out of
// accessgate's; `.ci/run` and `make demo` build it into bin/oidcop.
package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/zitadel/oidc/v3/example/server/config"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
)

func main() {
	cfg := config.FromEnvVars(&config.Config{Port: config.DefaultIssuerPort})
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	issuer := fmt.Sprintf("http://localhost:%s/", cfg.Port)

	storage.RegisterClients(
		storage.NativeClient("native", cfg.RedirectURI...),
		storage.WebClient("web", "secret", cfg.RedirectURI...),
		storage.WebClient("api", "secret", cfg.RedirectURI...),
	)
	users := storage.NewUserStore(issuer)
	if cfg.UsersFile != "" {
		var err error
		if users, err = storage.StoreFromFile(cfg.UsersFile); err != nil {
			logger.Error("cannot read USERS_FILE", "error", err)
			os.Exit(1)
		}
	}
	router := exampleop.SetupServer(issuer, storage.NewStorage(users), logger, false)
	server := &http.Server{Addr: "127.0.0.1:" + cfg.Port, Handler: router}
	logger.Info("oidcop listening on loopback", "issuer", issuer, "addr", server.Addr)
	if err := server.ListenAndServe(); err != http.ErrServerClosed {
		logger.Error("server terminated", "error", err)
		os.Exit(1)
	}
}
