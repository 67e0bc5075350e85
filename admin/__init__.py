"""The organising committee's actions as one service, with its CLI and HTTP doors."""
