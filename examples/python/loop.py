"""The training loop the LSTM and transformer examples share: a batch, the loss, backward,
`w.step(loss)`, the optimizer's step; then the verdict and where the report is."""

from pathlib import Path

import gradscope


def train(net, opt, batch, loss_fn, steps, out, **watch):
    """`steps` steps of `net` on `batch()` (a fresh (x, y) each call), watched into `out`."""
    with gradscope.watch(net, out=out, optimizer=opt, overwrite=True, **watch) as w:
        for _ in range(steps):
            x, y = batch()
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            w.step(loss)
            opt.step()
    print(w.verdict())
    print(f"report: {Path(out) / 'report.html'}")
    return w
