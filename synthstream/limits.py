"""One limit per quantity, shared by the CLI's argument types and the library's checks."""

MAX_SEED = 2**63            # run seeds are in [0, MAX_SEED): they must fit a signed 64-bit integer
MAX_INDEX = 2**63           # global sample indices (e.g. --first-index) likewise
MAX_BATCH = 65536           # images per stream batch (StreamConfig.batch_size, --batch, --batch-size)
MAX_SAMPLES = 1 << 20       # images per `generate` call (sample -n)
MAX_GRID_TILES = 1024       # tiles in one PNG grid (sample --out grid.png)
