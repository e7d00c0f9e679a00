# Deployment artefacts: Kubernetes manifests against the official schemas, the Dockerfile lint.
add_test(NAME deploy_k8s_manifests
         COMMAND ${MS_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/deploy/validate_k8s.mjs ${CMAKE_SOURCE_DIR}/docker/k8s)
add_test(NAME deploy_dockerfile_lint
         COMMAND ${MS_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/deploy/lint_dockerfile.mjs ${CMAKE_SOURCE_DIR}/docker/Dockerfile)
# Two replicas behind a real nginx with docker/nginx.conf: spreading, SSE pass-through, SIGTERM drain.
find_program(MS_NGINX nginx PATHS /usr/sbin /sbin)
add_test(NAME deploy_nginx_two_replicas
         COMMAND ${MS_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/deploy/test_nginx_lb.mjs $<TARGET_FILE:moeserve>
                 ${MS_MODELS}/tiny ${CMAKE_SOURCE_DIR}/docker/nginx.conf ${CMAKE_BINARY_DIR}/nginx_lb)
set_tests_properties(deploy_nginx_two_replicas PROPERTIES FIXTURES_REQUIRED model_tiny TIMEOUT 180
                     ENVIRONMENT "PATH=/usr/sbin:/sbin:$ENV{PATH}")
