"""The runner: config, pretrain, embed, evaluate, results store and leaderboard."""
