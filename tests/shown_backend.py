"""A matplotlib backend for tests: interactive as far as pyplot can tell, with no display;
``plt.show()`` prints the numbers of the figures it shows."""

from matplotlib._pylab_helpers import Gcf
from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg


class FigureManager(FigureManagerBase):
    def show(self):
        print(f"shown figure {self.canvas.figure.number}")


class FigureCanvas(FigureCanvasAgg):
    manager_class = FigureManager


def show(*args, **kwargs):
    for manager in Gcf.get_all_fig_managers():
        manager.show()
