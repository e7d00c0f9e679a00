# Deployment artefacts: Kubernetes manifests against the official schemas, the Dockerfile lint.
add_test(NAME deploy_k8s_manifests
         COMMAND ${MS_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/deploy/validate_k8s.mjs ${CMAKE_SOURCE_DIR}/docker/k8s)
add_test(NAME deploy_dockerfile_lint
         COMMAND ${MS_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/deploy/lint_dockerfile.mjs ${CMAKE_SOURCE_DIR}/docker/Dockerfile)
